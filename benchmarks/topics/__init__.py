"""Custom-topic benchmarks: few-shot topics on public intent datasets (`bench`) and the rules they share (`rules`)."""
