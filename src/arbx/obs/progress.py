"""A progress bar on the terminal while the pool book loads."""

from __future__ import annotations

from rich.progress import Progress, TaskID

from arbx.chain.book import LoadProgress


class LoadingBar(LoadProgress):
    """Shows ``loading N pools at block B`` with a bar that goes away when done."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def start(self, pools: int, block: int) -> None:
        """Show the bar."""
        self._progress = Progress(transient=True)
        self._progress.start()
        self._task = self._progress.add_task(f"loading {pools} pools at block {block}", total=pools)

    def advance(self, pools: int) -> None:
        """Move it on."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, pools)

    def done(self) -> None:
        """Take it away."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
