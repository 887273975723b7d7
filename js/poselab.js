// PoseLab frontend extension: shows what a PoseLab node reported after it ran (people found,
// metric values) as a read-only text widget on the node, so results are visible without
// opening a preview. Uses only the stable extension hooks of the current ComfyUI frontend.
import { app } from "../../scripts/app.js";

const WIDGET = "poselab_report";

function summarise(message) {
    const lines = [];
    if (Array.isArray(message?.text)) {
        lines.push(...message.text.map(String));
    }
    if (Array.isArray(message?.openpose_json)) {
        for (const raw of message.openpose_json) {
            try {
                const frames = JSON.parse(raw);
                const counts = frames.map((f) => (f.people || []).length);
                lines.push(`people per image: ${counts.join(", ")}`);
            } catch (err) {
                lines.push("pose JSON could not be read");
            }
        }
    }
    return lines.join("\n");
}

app.registerExtension({
    name: "poselab.report",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        // The Pose Editor shows its input on its own canvas (pose_editor.js).
        if (!nodeData?.name?.startsWith("PoseLab") || nodeData.name === "PoseLabPoseEditor") {
            return;
        }
        const onExecuted = nodeType.prototype.onExecuted;
        nodeType.prototype.onExecuted = function (message) {
            onExecuted?.apply(this, arguments);
            const text = summarise(message);
            if (!text) {
                return;
            }
            let widget = this.widgets?.find((w) => w.name === WIDGET);
            if (!widget) {
                widget = this.addWidget("text", WIDGET, "", () => {}, { serialize: false });
                widget.serialize = false;
            }
            widget.value = text;
            this.setDirtyCanvas?.(true, true);
        };
    },
});
