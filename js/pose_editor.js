// PoseLab Pose Editor: the canvas of the PoseLabPoseEditor node, a DOM widget on the node.
//
// Nothing is loaded from outside ComfyUI: the editor's modules and stylesheet are found next to
// this file through import.meta.url (any pack folder name works), and the skeleton tables and the
// pose library come from the pack's route /poselab/pose_editor/data. The edits live in the node's
// `edits` input (hidden here), so they are saved in the workflow and queued like any widget value.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { PoseEditor } from "./pose_editor/editor.js";

const NODE = "PoseLabPoseEditor";
const MIN_SIZE = [360, 600];
const STYLESHEET = new URL("./pose_editor/editor.css", import.meta.url).href;

// What each editor node received when it last ran, by node id: a node rebuilt from the graph
// (workflow reload, graph undo, tab switch) shows its input again without re-running.
const lastOutput = new Map();
let tables = null;

function loadTables() {
    tables ??= api.fetchApi("/poselab/pose_editor/data").then((r) => {
        if (!r.ok) throw new Error(`GET /poselab/pose_editor/data answered ${r.status}`);
        return r.json();
    });
    return tables;
}

function addStylesheet() {
    if (document.querySelector("link[data-poselab-pose-editor]")) return;
    const link = Object.assign(document.createElement("link"), { rel: "stylesheet", href: STYLESHEET });
    link.dataset.poselabPoseEditor = "";
    document.head.append(link);
}

const widgetNamed = (node, name) => node.widgets?.find((w) => w.name === name);
// Node ids repeat across workflows: key the cache by the open workflow too.
const outputKey = (id) => `${app.extensionManager?.workflow?.activeWorkflow?.key ?? ""}#${id}`;

function graphChanged(node) {
    node.setDirtyCanvas?.(true, true);
    // Keyboard edits do not pass through ComfyUI's mouse-up check: tell its change tracker.
    app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.checkState?.();
}

function attachEditor(node) {
    const edits = widgetNamed(node, "edits");
    if (!edits) return;
    // The stored edits stay a real (serialised) widget value; only its text box is hidden.
    edits.hidden = true;
    edits.options = { ...(edits.options || {}), hidden: true };
    edits.computeSize = () => [0, -4];

    const root = document.createElement("div");
    const editor = new PoseEditor(root, {
        onChange: (text) => {
            edits.value = text;
            graphChanged(node);
        },
        imageUrl: (ref) => api.apiURL(`/view?filename=${encodeURIComponent(ref.filename)}&type=${encodeURIComponent(ref.type || "temp")}`
            + `&subfolder=${encodeURIComponent(ref.subfolder || "")}`),
        canvasSize: () => [Number(widgetNamed(node, "width")?.value) || 512, Number(widgetNamed(node, "height")?.value) || 512],
    });
    const widget = node.addDOMWidget("pose_editor", "poselab_pose_editor", root, {
        serialize: false,
        hideOnZoom: false,
        getValue: () => undefined,
        setValue: () => {},
        getMinHeight: () => 380,
    });
    widget.serialize = false;
    node.poselabEditor = editor;
    for (const name of ["width", "height"]) {
        const w = widgetNamed(node, name);
        if (!w) continue;
        const callback = w.callback;
        w.callback = function () {
            const r = callback?.apply(this, arguments);
            editor.rebuild();
            return r;
        };
    }
    loadTables().then((t) => editor.setTables(t)).catch((err) => editor.fail(`the skeleton tables did not load: ${err.message}`));
    editor.loadValue(edits.value, true);
    node.setSize([Math.max(node.size[0], MIN_SIZE[0]), Math.max(node.size[1], MIN_SIZE[1])]);
}

api.addEventListener("executed", ({ detail }) => {
    if (detail?.output?.poselab_background !== undefined) lastOutput.set(outputKey(detail.display_node ?? detail.node), detail.output);
});

app.registerExtension({
    name: "poselab.pose_editor",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (nodeData?.name !== NODE) return;
        addStylesheet();
        const onNodeCreated = nodeType.prototype.onNodeCreated;
        nodeType.prototype.onNodeCreated = function () {
            const r = onNodeCreated?.apply(this, arguments);
            attachEditor(this);
            return r;
        };
        const onConfigure = nodeType.prototype.onConfigure;
        nodeType.prototype.onConfigure = function () {
            const r = onConfigure?.apply(this, arguments);
            const editor = this.poselabEditor;
            if (editor) {
                const cached = lastOutput.get(outputKey(this.id));
                if (cached) editor.receive(cached);
                editor.loadValue(widgetNamed(this, "edits")?.value ?? "", true);
                this.setSize([Math.max(this.size[0], MIN_SIZE[0]), Math.max(this.size[1], MIN_SIZE[1])]);
            }
            return r;
        };
        const onExecuted = nodeType.prototype.onExecuted;
        nodeType.prototype.onExecuted = function (message) {
            onExecuted?.apply(this, arguments);
            this.poselabEditor?.receive(message);
        };
    },
});
