// The Pose Editor canvas: drawing, mouse and keyboard editing, frames, undo/redo.
//
// Knows nothing about ComfyUI: pose_editor.js creates it inside a DOM widget and passes
// callbacks (where to store the edits, how to load a background). What the user sees is
// `session`: the frame's base pose (the input the edits refer to), the edited copy of each
// base person (`work`, null = deleted) and the added people. Every finished gesture writes the
// difference between `work` and `base` into the stored document (model.js) and records an undo
// step (the whole document before and after, so undo is exact).

import * as M from "./model.js";

const HISTORY_LIMIT = 200;
const HIT_RADIUS = 10; // screen pixels
const STATS_LIMIT = 2000;

export const SHORTCUTS = [
    ["drag a joint", "move it (a wrist takes its hand, the nose the face)"],
    ["Shift + drag a joint, or R then drag", "rotate the limb about its parent joint, with everything below it"],
    ["drag a bone or inside the selected person", "move the person"],
    ["drag empty space / middle button", "pan"],
    ["wheel", "zoom about the pointer"],
    ["Alt + wheel, + / -", "scale the selected person"],
    ["arrow keys (Shift: x10)", "move the selected person by 1 px"],
    ["Tab / Shift + Tab", "select the next / previous person"],
    ["N", "add a person (standing)"],
    ["D", "duplicate the selected person"],
    ["M", "mirror the selected person (left and right swap)"],
    ["Delete / Backspace", "delete the selected person"],
    ["X", "remove the selected joint (it becomes missing)"],
    ["L", "open the pose library (replaces the selected person's body, or adds a person)"],
    ["Ctrl + Z / Ctrl + Shift + Z, Ctrl + Y", "undo / redo"],
    [", / . (or Page Up / Page Down)", "previous / next frame of the batch"],
    ["F or 0, double-click empty space", "fit the view"],
    ["Esc", "deselect"],
];

const el = (tag, props = {}, children = []) => {
    const node = Object.assign(document.createElement(tag), props);
    for (const c of children) node.append(c);
    return node;
};

function hsv(h) {
    const i = Math.floor(h * 6), f = h * 6 - i, q = 1 - f;
    const [r, g, b] = [[1, f, 0], [q, 1, 0], [0, 1, f], [0, q, 1], [f, 0, 1], [1, 0, q]][i % 6];
    return `rgb(${Math.round(r * 255)},${Math.round(g * 255)},${Math.round(b * 255)})`;
}

export class PoseEditor {
    constructor(root, { onChange, imageUrl, canvasSize }) {
        this.onChange = onChange;
        this.imageUrl = imageUrl;
        this.canvasSize = canvasSize;
        this.tables = null;
        this.value = "";
        this.state = { frames: {} };
        this.inputFrames = null;
        this.storedInputs = {}; // frame -> the input pose stored with its edits (known before any run)
        this.backgrounds = [];
        this.images = new Map();
        this.frame = 0;
        this.history = [];
        this.historyAt = 0;
        this.selected = null; // {kind: "work" | "added", index}
        this.selectedPoint = null; // {part, index}
        this.rotateMode = false;
        this.view = { zoom: 1, panX: 0, panY: 0 };
        this.drag = null;
        this.stats = { dragFrameMs: [] };
        this.error = "";
        this.received = 0; // executions seen (tests wait on it)
        this.build(root);
        this.rebuild();
    }

    // ------------------------------------------------------------------------- DOM
    build(root) {
        this.root = root;
        root.classList.add("poselab-pe");
        const button = (label, title, fn) => {
            const b = el("button", { type: "button", textContent: label, title });
            b.addEventListener("click", (e) => { e.preventDefault(); fn(); this.focusKeys(); });
            return b;
        };
        this.frameLabel = el("span", { className: "poselab-pe-frame" });
        this.library = el("select", { title: "Pose library (L): replaces the selected person's body, or adds a person" });
        this.library.addEventListener("change", () => {
            if (this.library.value) this.pickLibrary(this.library.value);
            this.library.value = "";
            this.focusKeys();
        });
        this.rotateButton = button("Rotate", "Dragging a joint rotates its limb about the parent joint (R; or hold Shift)", () => this.toggleRotate());
        this.rebaseButton = button("Re-base", "Adopt the new input pose as the base of this frame's edits, keeping what is shown", () => this.rebase());
        this.rebaseButton.hidden = true;
        const bar = el("div", { className: "poselab-pe-bar" }, [
            button("\u25C0", "Previous frame (, or Page Up)", () => this.setFrame(this.frame - 1)),
            this.frameLabel,
            button("\u25B6", "Next frame (. or Page Down)", () => this.setFrame(this.frame + 1)),
            button("Add", "Add a standing person (N)", () => this.addPerson()),
            button("Dup", "Duplicate the selected person (D)", () => this.duplicate()),
            button("Del", "Delete the selected person (Delete)", () => this.deleteSelected()),
            button("Mirror", "Mirror the selected person (M)", () => this.mirrorSelected()),
            this.rotateButton,
            this.library,
            button("Undo", "Undo (Ctrl+Z)", () => this.undo()),
            button("Redo", "Redo (Ctrl+Shift+Z or Ctrl+Y)", () => this.redo()),
            button("Reset", "Drop this frame's edits: back to the input pose", () => this.resetFrame()),
            this.rebaseButton,
            button("Fit", "Fit the view (F)", () => this.fit()),
        ]);
        this.canvas = el("canvas", { className: "poselab-pe-canvas" });
        this.stage = el("div", { className: "poselab-pe-stage" }, [this.canvas]);
        this.status = el("div", { className: "poselab-pe-status" });
        // Keys go to a read-only text input: ComfyUI's own shortcuts (Delete removes nodes, Ctrl+Z
        // undoes the graph) leave a focused input alone, and we stop the event there.
        this.keys = el("input", { className: "poselab-pe-keys", readOnly: true, tabIndex: -1, ariaLabel: "Pose editor keys" });
        root.append(bar, this.stage, this.status, this.keys);

        const c = this.canvas;
        c.addEventListener("pointerdown", (e) => this.onPointerDown(e));
        c.addEventListener("pointermove", (e) => this.onPointerMove(e));
        c.addEventListener("pointerup", (e) => this.onPointerUp(e));
        c.addEventListener("pointercancel", (e) => this.onPointerUp(e));
        c.addEventListener("dblclick", (e) => { e.stopPropagation(); if (!this.hitTest(...this.local(e))) this.fit(); });
        c.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
        this.keys.addEventListener("keydown", (e) => this.onKey(e));
        this.keys.addEventListener("keyup", (e) => e.stopPropagation());
        new ResizeObserver(() => this.draw()).observe(this.stage);
    }

    focusKeys() {
        this.keys.focus({ preventScroll: true });
    }

    setTables(tables) {
        this.tables = tables;
        this.library.replaceChildren(el("option", { value: "", textContent: "library pose\u2026" }),
            ...Object.keys(tables.library).map((name) => el("option", { value: name, textContent: name })));
        this.rebuild();
    }

    fail(message) {
        this.error = message;
        this.updateStatus();
        this.draw();
    }

    // ----------------------------------------------------------------------- state
    /** Load the stored edits (from the workflow: it becomes one undo step over the input). */
    loadValue(text, fromWorkflow = false) {
        text = text || "";
        try {
            this.state = M.parseState(text);
            this.error = "";
        } catch (err) {
            this.state = { frames: {} };
            this.error = `the stored edits cannot be read (${err.message}); Reset clears them`;
        }
        this.value = text;
        if (fromWorkflow) {
            const first = Object.keys(this.state.frames).map(Number).sort((a, b) => a - b)[0];
            this.history = text ? [{ before: "", after: text, frame: first ?? 0 }] : [];
            this.historyAt = this.history.length;
            if (first !== undefined && this.inputFrames === null) this.frame = first;
        }
        this.rebuild();
    }

    /** What the node sent when it ran: its input pose(s) and background(s). */
    receive(message) {
        try {
            const raw = message?.openpose_json?.[0];
            const frames = raw ? JSON.parse(raw) : null;
            this.inputFrames = Array.isArray(frames) ? frames.map(M.readFrame) : null;
            this.error = "";
        } catch (err) {
            this.inputFrames = null;
            this.error = `the node sent a pose that cannot be read (${err.message})`;
        }
        this.backgrounds = message?.poselab_background || [];
        this.images.clear();
        this.received++;
        this.rebuild();
    }

    frameCount() {
        const stored = Object.keys(this.state.frames).map(Number);
        return Math.max(this.inputFrames?.length || 0, this.backgrounds.length, stored.length ? Math.max(...stored) + 1 : 0, 1);
    }

    emptyFrame() {
        const [width, height] = this.canvasSize();
        return { width, height, people: [] };
    }

    /** A frame's session: its base pose, the edited people, the added people. */
    sessionFor(frame) {
        const input = this.inputFrames?.[frame] || null;
        const stored = this.state.frames[frame];
        let session;
        if (stored && input && M.inputChanged(stored.input, input)) {
            // The input changed upstream: show the edits applied as offsets to it. The session's
            // base is the new input, so the next edit (or Re-base) stores them against it.
            const applied = M.applyFrameEdit(input, stored);
            session = { base: M.cloneFrame(input), work: applied.perIncoming, added: applied.added, changed: true, report: applied.report };
        } else if (stored) {
            const applied = M.applyFrameEdit(stored.input, stored);
            session = { base: M.cloneFrame(stored.input), work: applied.perIncoming, added: applied.added, changed: false, report: applied.report };
        } else {
            const known = input || this.storedInputs[frame];
            const base = known ? M.cloneFrame(known) : this.emptyFrame();
            session = { base, work: base.people.map(M.clonePerson), added: [], changed: false, report: null };
        }
        session.touched = this.touchedPoints(session);
        return session;
    }

    /** Rebuild the shown frame's session from the stored edits and the input. */
    rebuild() {
        for (const [k, fe] of Object.entries(this.state.frames)) this.storedInputs[k] = fe.input;
        this.frame = Math.max(0, Math.min(this.frame, this.frameCount() - 1));
        this.session = this.sessionFor(this.frame);
        if (this.selected && !this.selectedPerson()) this.selected = this.selectedPoint = null;
        this.rebaseButton.hidden = !this.session.changed;
        this.updateStatus();
        this.draw();
    }

    touchedPoints(session) {
        const touched = new Map();
        session.work.forEach((person, i) => {
            if (!person) return;
            const set = new Set();
            for (const [part, moved] of Object.entries(M.diffPerson(session.base.people[i], person))) {
                for (const k of Object.keys(moved)) set.add(`${part}:${k}`);
            }
            if (set.size) touched.set(person, set);
        });
        return touched;
    }

    /** People shown (on `frame`, default the frame shown), with where they live in the session. */
    displayed(frame = null) {
        const s = frame === null || frame === this.frame ? this.session : this.sessionFor(frame);
        const out = [];
        s.work.forEach((person, index) => person && out.push({ kind: "work", index, person }));
        s.added.forEach((person, index) => out.push({ kind: "added", index, person }));
        return out;
    }

    selectedPerson() {
        if (!this.selected || !this.session) return null;
        const list = this.selected.kind === "work" ? this.session.work : this.session.added;
        return list[this.selected.index] || null;
    }

    /** Store the session as the frame's edits and record an undo step. */
    commit() {
        const s = this.session;
        const edit = M.diffFrame(s.base, s.work, s.added);
        const frames = { ...this.state.frames };
        if (edit.people.length) frames[this.frame] = edit;
        else delete frames[this.frame];
        const text = M.dumpState({ frames });
        if (text === this.value) {
            this.rebuild();
            return;
        }
        this.history = this.history.slice(0, this.historyAt);
        this.history.push({ before: this.value, after: text, frame: this.frame });
        if (this.history.length > HISTORY_LIMIT) this.history.shift();
        this.historyAt = this.history.length;
        this.setStored(text);
    }

    setStored(text) {
        this.value = text;
        this.state = M.parseState(text);
        this.onChange?.(text);
        this.rebuild();
    }

    undo() {
        if (this.historyAt === 0) return;
        const step = this.history[--this.historyAt];
        this.frame = step.frame;
        this.setStored(step.before);
    }

    redo() {
        if (this.historyAt >= this.history.length) return;
        const step = this.history[this.historyAt++];
        this.frame = step.frame;
        this.setStored(step.after);
    }

    edit(fn) {
        if (!this.tables) return;
        if (fn() !== false) this.commit();
    }

    // ---------------------------------------------------------------- operations
    setFrame(i) {
        const n = this.frameCount();
        const next = ((i % n) + n) % n;
        if (next !== this.frame) this.selected = this.selectedPoint = null;
        this.frame = next;
        this.rebuild();
    }

    resetFrame() {
        this.edit(() => {
            const input = this.inputFrames?.[this.frame];
            const base = input ? M.cloneFrame(input) : this.session.base;
            this.session = { base, work: base.people.map(M.clonePerson), added: [] };
        });
    }

    rebase() {
        this.edit(() => undefined); // the session's base is already the new input
    }

    addPerson(name = "standing") {
        this.edit(() => {
            const { width, height } = this.session.base;
            const person = M.libraryPerson(this.tables.library[name] || Object.values(this.tables.library)[0], width, height);
            // As tall as the people already there (the median), else the library's size.
            const heights = this.displayed().map((d) => M.bbox(d.person)).filter(Boolean).map((b) => b[3] - b[1]).sort((a, b) => a - b);
            const own = M.bbox(person);
            if (heights.length && own && own[3] > own[1]) M.scalePerson(person, heights[heights.length >> 1] / (own[3] - own[1]));
            this.session.added.push(person);
            this.selected = { kind: "added", index: this.session.added.length - 1 };
        });
    }

    duplicate() {
        const person = this.selectedPerson();
        if (!person) return;
        this.edit(() => {
            const copy = M.clonePerson(person);
            const step = Math.max(8, 0.04 * Math.min(this.session.base.width, this.session.base.height));
            M.translatePerson(copy, step, step);
            this.session.added.push(copy);
            this.selected = { kind: "added", index: this.session.added.length - 1 };
        });
    }

    deleteSelected() {
        if (!this.selectedPerson()) return;
        this.edit(() => {
            if (this.selected.kind === "work") this.session.work[this.selected.index] = null;
            else this.session.added.splice(this.selected.index, 1);
            this.selected = this.selectedPoint = null;
        });
    }

    mirrorSelected() {
        const person = this.selectedPerson();
        if (person) this.edit(() => { M.mirrorPerson(person, this.tables); });
    }

    removeSelectedPoint() {
        const person = this.selectedPerson();
        const sp = this.selectedPoint;
        if (!person || !sp || !person[sp.part]?.[sp.index] || !(person[sp.part][sp.index][2] > 0)) return;
        this.edit(() => { person[sp.part][sp.index] = [0, 0, 0]; this.selectedPoint = null; });
    }

    pickLibrary(name) {
        const body = this.tables?.library[name];
        if (!body) return;
        const person = this.selectedPerson();
        if (!person) return this.addPerson(name);
        const { width, height } = this.session.base;
        this.edit(() => M.applyLibraryPose(person, body, this.tables, width, height));
    }

    movePerson(dx, dy) {
        const person = this.selectedPerson();
        if (person) this.edit(() => M.translatePerson(person, dx, dy));
    }

    scaleSelected(factor) {
        const person = this.selectedPerson();
        if (person) this.edit(() => M.scalePerson(person, factor));
    }

    cycleSelection(step) {
        const list = this.displayed();
        if (!list.length) return;
        const at = list.findIndex((d) => this.selected && d.kind === this.selected.kind && d.index === this.selected.index);
        const next = list[((at < 0 ? (step > 0 ? -1 : 0) : at) + step + list.length) % list.length];
        this.selected = { kind: next.kind, index: next.index };
        this.selectedPoint = null;
        this.updateStatus();
        this.draw();
    }

    toggleRotate() {
        this.rotateMode = !this.rotateMode;
        this.rotateButton.classList.toggle("poselab-pe-on", this.rotateMode);
        this.updateStatus();
    }

    fit() {
        this.view = { zoom: 1, panX: 0, panY: 0 };
        this.draw();
    }

    // ------------------------------------------------------------------ geometry
    /** Scale and offset mapping pose pixels to canvas CSS pixels. */
    transform() {
        const { width, height } = this.session.base;
        const cw = this.canvas.clientWidth || 1, ch = this.canvas.clientHeight || 1;
        const scale = Math.min(cw / width, ch / height) * 0.96 * this.view.zoom;
        return {
            scale,
            ox: (cw - width * scale) / 2 + this.view.panX,
            oy: (ch - height * scale) / 2 + this.view.panY,
        };
    }

    /** Pointer event -> canvas CSS pixels (the node may be scaled by the graph's zoom). */
    local(e) {
        const r = this.canvas.getBoundingClientRect();
        const k = this.canvas.clientWidth / (r.width || 1);
        return [(e.clientX - r.left) * k, (e.clientY - r.top) * k];
    }

    toPose(x, y) {
        const t = this.transform();
        return [(x - t.ox) / t.scale, (y - t.oy) / t.scale];
    }

    /** Pose pixels -> client (page) coordinates; for tests and tooltips. */
    poseToClient(x, y) {
        const t = this.transform();
        const r = this.canvas.getBoundingClientRect();
        const k = (r.width || 1) / (this.canvas.clientWidth || 1);
        return [r.left + (t.ox + x * t.scale) * k, r.top + (t.oy + y * t.scale) * k];
    }

    /** Client pixels per pose pixel. */
    clientScale() {
        const r = this.canvas.getBoundingClientRect();
        return this.transform().scale * (r.width || 1) / (this.canvas.clientWidth || 1);
    }

    hitTest(x, y) {
        if (!this.session) return null;
        const t = this.transform();
        const list = this.displayed();
        const sel = this.selectedPerson();
        const order = [...list.filter((d) => d.person === sel), ...list.filter((d) => d.person !== sel)];
        let best = null;
        const consider = (d, part, index, p, radius) => {
            const dist = Math.hypot(t.ox + p[0] * t.scale - x, t.oy + p[1] * t.scale - y);
            if (dist <= radius && (!best || dist < best.dist)) best = { type: "point", ref: d, part, index, dist };
        };
        for (const d of order) d.person.body.forEach((p, i) => p[2] > 0 && consider(d, "body", i, p, HIT_RADIUS));
        if (best) return best;
        for (const d of order) {
            for (const part of ["left_hand", "right_hand", "face"]) {
                (d.person[part] || []).forEach((p, i) => p[2] > 0 && consider(d, part, i, p, HIT_RADIUS * 0.6));
            }
        }
        if (best) return best;
        for (const d of order) {
            for (const [a, b] of this.tables?.limbs || []) {
                const pa = d.person.body[a], pb = d.person.body[b];
                if (!(pa[2] > 0 && pb[2] > 0)) continue;
                const ax = t.ox + pa[0] * t.scale, ay = t.oy + pa[1] * t.scale;
                const bx = t.ox + pb[0] * t.scale, by = t.oy + pb[1] * t.scale;
                const len2 = (bx - ax) ** 2 + (by - ay) ** 2 || 1;
                const u = Math.max(0, Math.min(1, ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / len2));
                if (Math.hypot(ax + u * (bx - ax) - x, ay + u * (by - ay) - y) <= 6) return { type: "person", ref: d };
            }
        }
        const selRef = order.find((d) => d.person === sel);
        const box = sel && M.bbox(sel, Object.keys(M.PARTS));
        if (box) {
            const [px, py] = this.toPose(x, y);
            if (px >= box[0] && px <= box[2] && py >= box[1] && py <= box[3]) return { type: "person", ref: selRef };
        }
        return null;
    }

    // -------------------------------------------------------------------- input
    onPointerDown(e) {
        e.stopPropagation();
        this.focusKeys();
        if (!this.session || e.button === 2) return;
        const [x, y] = this.local(e);
        const hit = e.button === 1 ? null : this.hitTest(x, y);
        this.canvas.setPointerCapture(e.pointerId);
        if (!hit) {
            if (e.button === 0) this.selected = this.selectedPoint = null;
            this.drag = { type: "pan", x, y, panX: this.view.panX, panY: this.view.panY };
            this.updateStatus();
            this.draw();
            return;
        }
        e.preventDefault();
        this.selected = { kind: hit.ref.kind, index: hit.ref.index };
        const person = hit.ref.person;
        const snapshot = M.clonePerson(person);
        const [px, py] = this.toPose(x, y);
        if (hit.type === "point") {
            this.selectedPoint = { part: hit.part, index: hit.index };
            const pivot = hit.part === "body" ? M.pivotOf(this.tables, hit.index) : null;
            if ((this.rotateMode || e.shiftKey) && pivot !== null && person.body[pivot][2] > 0) {
                const c = person.body[pivot];
                this.drag = { type: "rotate", person, snapshot, joint: hit.index, cx: c[0], cy: c[1], a0: Math.atan2(py - c[1], px - c[0]) };
            } else {
                const p = person[hit.part][hit.index];
                this.drag = { type: "joint", person, snapshot, part: hit.part, index: hit.index, px, py, x0: p[0], y0: p[1] };
            }
        } else {
            this.selectedPoint = null;
            this.drag = { type: "move", person, snapshot, px, py };
        }
        this.drag.moved = false;
        this.updateStatus();
        this.draw();
    }

    onPointerMove(e) {
        if (!this.drag) return;
        e.stopPropagation();
        const t0 = performance.now();
        const [x, y] = this.local(e);
        const d = this.drag;
        if (d.type === "pan") {
            this.view.panX = d.panX + x - d.x;
            this.view.panY = d.panY + y - d.y;
            this.draw();
            return;
        }
        const [px, py] = this.toPose(x, y);
        const restore = () => Object.assign(d.person, M.clonePerson(d.snapshot));
        if (d.type === "joint") {
            restore();
            M.moveJoint(d.person, this.tables, d.part, d.index, d.x0 + px - d.px, d.y0 + py - d.py);
            this.markTouched(d.person, d.part, d.index);
        } else if (d.type === "rotate") {
            restore();
            M.rotateChain(d.person, this.tables, d.joint, Math.atan2(py - d.cy, px - d.cx) - d.a0);
            this.markTouched(d.person, "body", d.joint);
        } else {
            restore();
            M.translatePerson(d.person, px - d.px, py - d.py);
        }
        d.moved = true;
        this.draw();
        this.stats.dragFrameMs.push(performance.now() - t0);
        if (this.stats.dragFrameMs.length > STATS_LIMIT) this.stats.dragFrameMs.shift();
    }

    markTouched(person, part, index) {
        const set = this.session.touched.get(person) || new Set();
        set.add(`${part}:${index}`);
        this.session.touched.set(person, set);
    }

    onPointerUp(e) {
        const d = this.drag;
        if (!d) return;
        e.stopPropagation();
        this.drag = null;
        if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
        if (d.type !== "pan" && d.moved) this.commit();
    }

    onWheel(e) {
        e.preventDefault();
        e.stopPropagation();
        if (!this.session) return;
        const factor = Math.exp(-Math.max(-200, Math.min(200, e.deltaY)) * 0.0015);
        if (e.altKey && this.selectedPerson()) {
            M.scalePerson(this.selectedPerson(), factor);
            this.draw();
            clearTimeout(this.wheelCommit);
            this.wheelCommit = setTimeout(() => this.commit(), 300);
            return;
        }
        const [x, y] = this.local(e);
        const [px, py] = this.toPose(x, y);
        this.view.zoom = Math.max(0.2, Math.min(40, this.view.zoom * factor));
        const t = this.transform(); // keep the pose point under the pointer
        this.view.panX += x - (t.ox + px * t.scale);
        this.view.panY += y - (t.oy + py * t.scale);
        this.draw();
    }

    onKey(e) {
        const key = e.key;
        const ctrl = e.ctrlKey || e.metaKey;
        let handled = true;
        if (ctrl && key.toLowerCase() === "z") (e.shiftKey ? this.redo() : this.undo());
        else if (ctrl && key.toLowerCase() === "y") this.redo();
        else if (ctrl) handled = false;
        else if (key === "Delete" || key === "Backspace") this.deleteSelected();
        else if (key === "d" || key === "D") this.duplicate();
        else if (key === "m" || key === "M") this.mirrorSelected();
        else if (key === "n" || key === "N") this.addPerson();
        else if (key === "x" || key === "X") this.removeSelectedPoint();
        else if (key === "r" || key === "R") this.toggleRotate();
        else if (key === "l" || key === "L") { this.library.focus(); this.library.showPicker?.(); }
        else if (key === "f" || key === "F" || key === "0") this.fit();
        else if (key === "+" || key === "=") this.scaleSelected(1.05);
        else if (key === "-" || key === "_") this.scaleSelected(1 / 1.05);
        else if (key.startsWith("Arrow")) {
            const step = e.shiftKey ? 10 : 1;
            const [dx, dy] = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[key];
            this.movePerson(dx, dy);
        } else if (key === "Tab") this.cycleSelection(e.shiftKey ? -1 : 1);
        else if (key === "," || key === "PageUp") this.setFrame(this.frame - 1);
        else if (key === "." || key === "PageDown") this.setFrame(this.frame + 1);
        else if (key === "Escape") { this.selected = this.selectedPoint = null; this.updateStatus(); this.draw(); }
        else handled = false;
        e.stopPropagation();
        if (handled) e.preventDefault();
    }

    // ------------------------------------------------------------------ drawing
    updateStatus() {
        const s = this.session;
        const n = this.frameCount();
        this.frameLabel.textContent = `frame ${this.frame + 1}/${n}`;
        if (!s) return;
        const edits = this.state.frames[this.frame];
        const points = s.report?.edited_points || 0;
        const count = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
        const parts = [count(this.displayed().length, "person", "people")];
        if (edits) parts.push(`edits: ${count(points, "point")} moved, ${count(s.report?.deleted || 0, "person", "people")} deleted, ${s.added.length} added`);
        if (this.rotateMode) parts.push("rotate mode");
        if (!this.inputFrames) parts.push("run the workflow to load the incoming pose");
        let text = parts.join(" \u00b7 ");
        this.status.classList.toggle("poselab-pe-warn", !!(s.changed || this.error));
        if (s.changed) {
            text = `The input changed upstream since this frame was edited: the edits are kept as offsets on the ${points} points `
                + `you touched (orange)${s.report?.unmatched ? `; ${s.report.unmatched} edited people are gone from the input` : ""}. `
                + "Re-base adopts the new input keeping what you see; Reset drops the edits.";
        }
        if (this.error) text = `Pose Editor: ${this.error}`;
        else if (!this.tables) text = "loading the skeleton tables\u2026";
        this.status.textContent = text;
    }

    background() {
        const ref = this.backgrounds[this.frame] || (this.backgrounds.length === 1 ? this.backgrounds[0] : null);
        if (!ref) return null;
        const url = this.imageUrl(ref);
        let img = this.images.get(url);
        if (!img) {
            img = new Image();
            img.onload = () => this.draw();
            img.src = url;
            this.images.set(url, img);
        }
        return img.complete && img.naturalWidth ? img : null;
    }

    draw() {
        const c = this.canvas;
        const dpr = window.devicePixelRatio || 1;
        const w = c.clientWidth, h = c.clientHeight;
        if (!w || !h || !this.session) return;
        if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
            c.width = Math.round(w * dpr);
            c.height = Math.round(h * dpr);
        }
        const ctx = c.getContext("2d");
        ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
        ctx.fillStyle = "#1b1b1b";
        ctx.fillRect(0, 0, w, h);
        const { width, height } = this.session.base;
        const t = this.transform();
        ctx.fillStyle = "#000";
        ctx.fillRect(t.ox, t.oy, width * t.scale, height * t.scale);
        const bg = this.background();
        if (bg) {
            ctx.globalAlpha = 0.45; // dimmed, so the skeleton stands out
            ctx.drawImage(bg, t.ox, t.oy, width * t.scale, height * t.scale);
            ctx.globalAlpha = 1;
        }
        if (!this.tables) return;
        const sel = this.selectedPerson();
        for (const d of this.displayed()) this.drawPerson(ctx, t, d.person, d.person === sel);
    }

    drawPerson(ctx, t, person, selected) {
        const X = (p) => t.ox + p[0] * t.scale, Y = (p) => t.oy + p[1] * t.scale;
        const { limbs, colors, hand_edges: handEdges } = this.tables;
        const body = person.body;
        const stick = Math.max(2, Math.min(10, 6 * t.scale));
        const radius = Math.max(3, Math.min(8, 4 * t.scale));
        ctx.lineCap = "round";
        ctx.lineWidth = stick;
        limbs.forEach(([a, b], i) => {
            if (!(body[a][2] > 0 && body[b][2] > 0)) return;
            const [r, g, bl] = colors[i];
            ctx.strokeStyle = `rgb(${r * 0.6},${g * 0.6},${bl * 0.6})`;
            ctx.beginPath();
            ctx.moveTo(X(body[a]), Y(body[a]));
            ctx.lineTo(X(body[b]), Y(body[b]));
            ctx.stroke();
        });
        for (const part of ["left_hand", "right_hand"]) {
            const hand = person[part];
            if (!hand) continue;
            ctx.lineWidth = Math.max(1, Math.min(3, 1.5 * t.scale));
            handEdges.forEach(([a, b], i) => {
                if (!(hand[a][2] > 0 && hand[b][2] > 0)) return;
                ctx.strokeStyle = hsv(i / handEdges.length);
                ctx.beginPath();
                ctx.moveTo(X(hand[a]), Y(hand[a]));
                ctx.lineTo(X(hand[b]), Y(hand[b]));
                ctx.stroke();
            });
            ctx.fillStyle = "rgb(0,0,255)";
            ctx.beginPath();
            const hr = Math.max(1.5, Math.min(4, 2 * t.scale));
            for (const p of hand) if (p[2] > 0) { ctx.moveTo(X(p) + hr, Y(p)); ctx.arc(X(p), Y(p), hr, 0, 2 * Math.PI); }
            ctx.fill();
        }
        if (person.face) {
            ctx.fillStyle = "#fff";
            ctx.beginPath();
            const fr = Math.max(1, Math.min(3, 1.5 * t.scale));
            for (const p of person.face) if (p[2] > 0) { ctx.moveTo(X(p) + fr, Y(p)); ctx.arc(X(p), Y(p), fr, 0, 2 * Math.PI); }
            ctx.fill();
        }
        body.forEach((p, i) => {
            if (!(p[2] > 0)) return;
            ctx.fillStyle = `rgb(${colors[i].join(",")})`;
            ctx.beginPath();
            ctx.arc(X(p), Y(p), radius, 0, 2 * Math.PI);
            ctx.fill();
        });
        const touched = this.session.touched.get(person);
        if (touched) {
            ctx.strokeStyle = this.session.changed ? "#ff9d00" : "#ffffff";
            ctx.lineWidth = 1.5;
            ctx.beginPath();
            for (const key of touched) {
                const [part, k] = key.split(":");
                const p = person[part]?.[Number(k)];
                if (!p || !(p[2] > 0)) continue;
                const rr = part === "body" ? radius + 3 : radius;
                ctx.moveTo(X(p) + rr, Y(p));
                ctx.arc(X(p), Y(p), rr, 0, 2 * Math.PI);
            }
            ctx.stroke();
        }
        if (selected) {
            const box = M.bbox(person, Object.keys(M.PARTS));
            if (box) {
                ctx.setLineDash([5, 4]);
                ctx.strokeStyle = "#9cf";
                ctx.lineWidth = 1;
                ctx.strokeRect(X(box) - 8, t.oy + box[1] * t.scale - 8, (box[2] - box[0]) * t.scale + 16, (box[3] - box[1]) * t.scale + 16);
                ctx.setLineDash([]);
            }
            const sp = this.selectedPoint;
            const p = sp && person[sp.part]?.[sp.index];
            if (p && p[2] > 0) {
                ctx.strokeStyle = "#fff";
                ctx.lineWidth = 2;
                ctx.beginPath();
                ctx.arc(X(p), Y(p), radius + 5, 0, 2 * Math.PI);
                ctx.stroke();
            }
        }
    }
}
