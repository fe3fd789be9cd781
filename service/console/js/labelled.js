// Labelled samples as operators paste them: "1<TAB>text" / "0 text" lines, or JSON lines {"text", "match"|"label"}.

const YES = new Set(["1", "true", "yes", "y", "+", "match"]);
const NO = new Set(["0", "false", "no", "n", "-", "nomatch", "no_match"]);

function truth(value, topicName) {
  if (typeof value === "boolean") return value;
  if (typeof value === "number") return value === 1 ? true : value === 0 ? false : null;
  if (typeof value !== "string") return null;
  const word = value.trim().toLowerCase();
  if (YES.has(word) || word === topicName.toLowerCase()) return true;
  if (NO.has(word)) return false;
  return null;
}

/**
 * `{examples: [{text, match}], lines: [line number per example]}` or `{error}` naming the first bad line.
 * A JSON line's `label` may also be the topic's name (true) or any other name (false), as the CLI reads it.
 */
export function parseLabelled(text, topicName) {
  const examples = [];
  const numbers = [];
  const rows = text.split("\n");
  for (let i = 0; i < rows.length; i += 1) {
    const line = rows[i].trim();
    if (!line) continue;
    const n = i + 1;
    let item;
    if (line.startsWith("{")) {
      let row;
      try {
        row = JSON.parse(line);
      } catch {
        return { error: `Line ${n} starts with { but is not valid JSON.` };
      }
      const raw = "match" in row ? row.match : row.label;
      let match = truth(raw, topicName);
      if (match === null && typeof row.label === "string") match = false; // another topic's name
      if (typeof row.text !== "string" || !row.text.trim() || match === null) {
        return { error: `Line ${n}: a JSON line needs "text" and "match": true/false (or "label").` };
      }
      item = { text: row.text, match };
    } else {
      const found = /^(\S+)[\t ,;]+(.+)$/.exec(line);
      const match = found ? truth(found[1], topicName) : null;
      if (match === null) {
        return { error: `Line ${n}: start with 1 (belongs to the topic) or 0 (does not), then the text.` };
      }
      item = { text: found[2].trim(), match };
    }
    examples.push(item);
    numbers.push(n);
  }
  if (!examples.length) return { error: "Paste labelled texts, one per line (e.g. “1<tab>is acme cheaper?”)." };
  if (!examples.some((e) => e.match) || examples.every((e) => e.match)) {
    return { error: "Include texts that belong to the topic (1) and texts that do not (0): both are needed to measure it." };
  }
  return { examples, lines: numbers };
}
