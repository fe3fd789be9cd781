"""Data builders: data/ from the shared datasets (`build`), the topic benchmark datasets (`topics`)."""
