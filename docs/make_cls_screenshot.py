"""Make the README's classification screenshot: the classification sample project with a trained run, every slide's
class probabilities in the Predict widget's table, and a melanoma slide's saliency map overlaid.

Give a fine-tuned classification run (e.g. one of benchmarks/isic_classification.py's); it is copied into the
sample project's runs folder. Run on a display (or under `xvfb-run -a -s "-screen 0 1600x1000x24"`):

    python docs/make_cls_screenshot.py RUN docs/screenshot-classification.png
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(run: str, out: str = "docs/screenshot-classification.png", slide: str = "ISIC_0000278.jpg") -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_s4mi.core.sample import create_cls_sample_project
    from napari_s4mi.widgets.launch import dock_widgets
    from napari_s4mi.widgets.session import session_for

    def wait(condition) -> None:
        while not condition():
            QApplication.processEvents()
            time.sleep(0.01)

    with tempfile.TemporaryDirectory() as tmp:
        project = create_cls_sample_project(Path(tmp) / "project")
        shutil.copytree(run, project.runs_dir / Path(run).name)
        viewer = napari.Viewer(title="napari-s4mi")
        viewer.window.resize(1500, 950)
        widgets = dock_widgets(viewer)
        widgets["Project"].open_folder(str(project.root))
        session = session_for(viewer)
        session.show_slide(slide)
        predict_w = widgets["Predict"]
        predict_w.refresh_runs()
        predict_w.scope.setCurrentText("all slides")
        predict_w.predict_button.click()
        wait(lambda: not predict_w.job.running)
        wait(lambda: not predict_w.job.worker.is_running)
        panel = predict_w.cls_panel
        panel.class_box.setCurrentText("melanoma")
        panel.network_box.setCurrentText("cnn")
        panel.kind_box.setCurrentText("gradcam")
        panel.show_saliency()
        wait(lambda: panel.job is not None and not panel.job.running)
        wait(lambda: "saliency" in session.layers)
        session.layers["labels"].visible = False
        predict_w.parent().raise_()
        for _ in range(80):
            QApplication.processEvents()
            time.sleep(0.01)
        viewer.screenshot(out, canvas_only=False, flash=False)
        viewer.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
