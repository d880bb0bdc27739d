"""Make the README screenshot: the plugin on the sample project after a short training, prediction overlaid.

Run on a display (or `xvfb-run -a -s "-screen 0 1600x1000x24"`):  python docs/make_screenshot.py docs/screenshot.png
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def main(out: str = "docs/screenshot.png", iterations: int = 60) -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_s4mi.core.sample import HELD_BACK, create_sample_project
    from napari_s4mi.widgets.launch import dock_widgets
    from napari_s4mi.widgets.session import session_for

    def wait(condition) -> None:
        while not condition():
            QApplication.processEvents()
            time.sleep(0.01)

    with tempfile.TemporaryDirectory() as tmp:
        project = create_sample_project(Path(tmp) / "project")
        viewer = napari.Viewer(title="napari-s4mi")
        viewer.window.resize(1500, 950)
        widgets = dock_widgets(viewer)
        widgets["Project"].open_folder(str(project.root))
        session = session_for(viewer)
        session.show_slide(HELD_BACK[1])
        train_w, predict_w = widgets["Train"], widgets["Predict"]
        train_w.form.preset.setCurrentText("cpu-small")
        train_w.form.iterations.setValue(iterations)
        train_w.form.device.setCurrentText("cpu")
        train_w.start_button.click()
        wait(lambda: not train_w.job.running)
        wait(lambda: not train_w.job.worker.is_running)
        predict_w.refresh_runs()
        predict_w.disagreement.setChecked(False)
        predict_w.predict_button.click()
        wait(lambda: not predict_w.job.running)
        wait(lambda: not predict_w.job.worker.is_running)
        session.layers["labels"].visible = False  # the held-back slide's (empty) mask would hide nothing anyway
        widgets["Train"].parent().raise_()
        for _ in range(50):
            QApplication.processEvents()
            time.sleep(0.01)
        viewer.screenshot(out, canvas_only=False, flash=False)
        viewer.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
