// Pose Editor model: poses, the stored edits document, and the edit operations. No DOM here.
//
// The stored document and the rules for applying it are those of models/pose/editor_state.py
// (the node applies the edits there; this copy only decides what the canvas shows). A person
// is {body, left_hand, right_hand, face}: arrays of [x, y, c] (c > 0 = present) or null.

export const FORMAT = "poselab-pose-edits";
export const VERSION = 1;
export const PARTS = { body: 18, left_hand: 21, right_hand: 21, face: 70 };
const WIRE = {
    body: "pose_keypoints_2d",
    left_hand: "hand_left_keypoints_2d",
    right_hand: "hand_right_keypoints_2d",
    face: "face_keypoints_2d",
};
const SAME_POINT_PX = 0.01;
const MATCH_FRACTION = 0.5;

// ------------------------------------------------------------------------------ poses

function readPart(raw, count, width, height) {
    if (!Array.isArray(raw) || raw.length === 0) return null;
    const flat = Array.isArray(raw[0]) ? raw.flat() : raw;
    if (flat.length !== count * 3) throw new Error(`expected ${count * 3} numbers, got ${flat.length}`);
    const pts = [];
    for (let i = 0; i < count; i++) {
        const [x, y, c] = [Number(flat[3 * i]), Number(flat[3 * i + 1]), Number(flat[3 * i + 2])];
        pts.push(c > 0 && Number.isFinite(x) && Number.isFinite(y) && Number.isFinite(c) ? [x, y, 1] : [0, 0, 0]);
    }
    // Coordinates normalised to [0, 1] (some detectors) are scaled to pixels, as the node does.
    const present = pts.filter((p) => p[2] > 0);
    if (present.length && present.every((p) => Math.abs(p[0]) <= 1 && Math.abs(p[1]) <= 1)) {
        for (const p of present) {
            p[0] *= width;
            p[1] *= height;
        }
    }
    return pts;
}

export function readPerson(raw, width, height) {
    const person = {};
    for (const [part, count] of Object.entries(PARTS)) person[part] = readPart(raw?.[WIRE[part]], count, width, height);
    if (!person.body) person.body = emptyPart("body");
    return person;
}

/** A POSE_KEYPOINT frame dict -> {width, height, people}. */
export function readFrame(raw) {
    const width = Math.round(Number(raw?.canvas_width));
    const height = Math.round(Number(raw?.canvas_height));
    if (!(width > 0 && height > 0)) throw new Error("a pose frame needs a positive canvas_width and canvas_height");
    return { width, height, people: (raw.people || []).map((p) => readPerson(p, width, height)) };
}

const round3 = (v) => Math.round(v * 1000) / 1000;

export function writePerson(person) {
    const out = {};
    for (const part of Object.keys(PARTS)) {
        const pts = person[part];
        out[WIRE[part]] = pts ? pts.flatMap((p) => (p[2] > 0 ? [round3(p[0]), round3(p[1]), 1] : [0, 0, 0])) : null;
    }
    return out;
}

export function writeFrame(frame) {
    return { canvas_width: frame.width, canvas_height: frame.height, people: frame.people.map(writePerson) };
}

export const emptyPart = (part) => Array.from({ length: PARTS[part] }, () => [0, 0, 0]);
export const clonePerson = (p) => {
    const out = {};
    for (const part of Object.keys(PARTS)) out[part] = p[part] ? p[part].map((q) => q.slice()) : null;
    return out;
};
export const cloneFrame = (f) => ({ width: f.width, height: f.height, people: f.people.map(clonePerson) });

function allPoints(person) {
    const out = [];
    for (const [part, count] of Object.entries(PARTS)) {
        const pts = person[part];
        for (let i = 0; i < count; i++) out.push(pts ? pts[i] : [0, 0, 0]);
    }
    return out;
}

export function bbox(person, parts = ["body"]) {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const part of parts) {
        for (const p of person[part] || []) {
            if (p[2] <= 0) continue;
            x0 = Math.min(x0, p[0]); y0 = Math.min(y0, p[1]);
            x1 = Math.max(x1, p[0]); y1 = Math.max(y1, p[1]);
        }
    }
    return x0 === Infinity ? null : [x0, y0, x1, y1];
}

// --------------------------------------------------------------------- stored edits

/** Parse the widget value; "" -> no edits. Throws with a readable message. */
export function parseState(text) {
    if (!text || !String(text).trim()) return { frames: {} };
    const doc = JSON.parse(text);
    if (doc?.format !== FORMAT) throw new Error(`'format' must be ${FORMAT}`);
    if (!(doc.version >= 1 && doc.version <= VERSION)) throw new Error(`version ${doc.version} is newer than this PoseLab`);
    const frames = {};
    for (const [key, raw] of Object.entries(doc.frames || {})) {
        const input = readFrame(raw.input);
        const people = (raw.people || []).map((e) =>
            e.added ? { added: readPerson(e.added, input.width, input.height) }
                : { input_person: e.input_person, deleted: !!e.deleted, points: e.points || {} });
        frames[Number(key)] = { input, people };
    }
    return { frames };
}

export function dumpState(state) {
    const frames = {};
    for (const key of Object.keys(state.frames).map(Number).sort((a, b) => a - b)) {
        const fe = state.frames[key];
        if (!fe.people.length) continue;
        frames[String(key)] = {
            input: writeFrame(fe.input),
            people: fe.people.map((e) => {
                if (e.added) return { added: writePerson(e.added) };
                if (e.deleted) return { input_person: e.input_person, deleted: true };
                return { input_person: e.input_person, points: e.points };
            }),
        };
    }
    if (!Object.keys(frames).length) return "";
    return JSON.stringify({ format: FORMAT, version: VERSION, frames });
}

/** Point edits turning `before` into `after` (as editor_state.diff_person). */
export function diffPerson(before, after) {
    const points = {};
    for (const [part, count] of Object.entries(PARTS)) {
        const a = before[part], b = after[part];
        const moved = {};
        for (let i = 0; i < count; i++) {
            const pa = a ? a[i] : [0, 0, 0], pb = b ? b[i] : [0, 0, 0];
            if (pa[2] > 0 && !(pb[2] > 0)) moved[i] = null;
            else if (pb[2] > 0 && (!(pa[2] > 0) || Math.abs(pa[0] - pb[0]) > SAME_POINT_PX / 10
                || Math.abs(pa[1] - pb[1]) > SAME_POINT_PX / 10)) moved[i] = [round3(pb[0]), round3(pb[1])];
        }
        if (Object.keys(moved).length) points[part] = moved;
    }
    return points;
}

/** The frame edit for base people edited into `work` (null = deleted) plus `added` people. */
export function diffFrame(base, work, added) {
    const people = [];
    work.forEach((person, i) => {
        if (person === null) people.push({ input_person: i, deleted: true });
        else {
            const points = diffPerson(base.people[i], person);
            if (Object.keys(points).length) people.push({ input_person: i, points });
        }
    });
    for (const p of added) people.push({ added: clonePerson(p) });
    return { input: cloneFrame(base), people };
}

export function matchPeople(stored, incoming, sx = 1, sy = 1) {
    const pairs = [];
    const incomingPts = incoming.map(allPoints);
    stored.forEach((person, i) => {
        const a = allPoints(person).map((p) => [p[0] * sx, p[1] * sy, p[2]]);
        const present = a.filter((p) => p[2] > 0);
        if (!present.length) return;
        const xs = present.map((p) => p[0]), ys = present.map((p) => p[1]);
        const size = Math.hypot(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys));
        const limit = MATCH_FRACTION * Math.max(size, 1);
        incomingPts.forEach((b, j) => {
            let sum = 0, n = 0;
            for (let k = 0; k < a.length; k++) {
                if (a[k][2] > 0 && b[k][2] > 0) {
                    sum += Math.hypot(a[k][0] - b[k][0], a[k][1] - b[k][1]);
                    n++;
                }
            }
            if (n && sum / n < limit) pairs.push([sum / n, i, j]);
        });
    });
    pairs.sort((p, q) => p[0] - q[0] || p[1] - q[1] || p[2] - q[2]);
    const match = new Map(), taken = new Set();
    for (const [, i, j] of pairs) {
        if (!match.has(i) && !taken.has(j)) {
            match.set(i, j);
            taken.add(j);
        }
    }
    return match;
}

function samePerson(a, b) {
    const pa = allPoints(a), pb = allPoints(b);
    for (let k = 0; k < pa.length; k++) {
        if ((pa[k][2] > 0) !== (pb[k][2] > 0)) return false;
        if (pa[k][2] > 0 && (Math.abs(pa[k][0] - pb[k][0]) > SAME_POINT_PX || Math.abs(pa[k][1] - pb[k][1]) > SAME_POINT_PX)) return false;
    }
    return true;
}

export function inputChanged(stored, incoming, match) {
    if (stored.width !== incoming.width || stored.height !== incoming.height) return true;
    if (stored.people.length !== incoming.people.length) return true;
    match = match || matchPeople(stored.people, incoming.people);
    for (let i = 0; i < stored.people.length; i++) if (match.get(i) !== i) return true;
    return !stored.people.every((p, i) => samePerson(p, incoming.people[i]));
}

export function applyPoints(person, stored, points, sx = 1, sy = 1) {
    const out = clonePerson(person);
    for (const [part, moved] of Object.entries(points)) {
        const had = out[part] !== null;
        const arr = out[part] || emptyPart(part);
        const base = stored[part] || emptyPart(part);
        for (const [key, p] of Object.entries(moved)) {
            const i = Number(key);
            if (p === null) arr[i] = [0, 0, 0];
            else if (base[i][2] > 0 && arr[i][2] > 0) arr[i] = [arr[i][0] + (p[0] - base[i][0]) * sx, arr[i][1] + (p[1] - base[i][1]) * sy, arr[i][2]];
            else arr[i] = [p[0] * sx, p[1] * sy, 1];
        }
        if (had || arr.some((q) => q[2] > 0)) out[part] = arr;
    }
    return out;
}

function scaledPerson(person, sx, sy) {
    const out = clonePerson(person);
    for (const part of Object.keys(PARTS)) for (const p of out[part] || []) { p[0] *= sx; p[1] *= sy; }
    return out;
}

/**
 * The incoming frame with a frame edit applied (editor_state.apply_frame_edit). Returns the
 * people shown, and per incoming person its edited copy (null = deleted) for re-basing.
 */
export function applyFrameEdit(frame, edit) {
    const stored = edit.input;
    const sx = frame.width / stored.width, sy = frame.height / stored.height;
    const match = matchPeople(stored.people, frame.people, sx, sy);
    const report = { input_changed: inputChanged(stored, frame, match), edited_points: 0, deleted: 0, added: 0, unmatched: 0 };
    const byIncoming = new Map();
    const added = [];
    for (const e of edit.people) {
        if (e.added) { added.push(scaledPerson(e.added, sx, sy)); continue; }
        const j = match.get(e.input_person);
        if (j === undefined) { report.unmatched++; continue; }
        byIncoming.set(j, e);
    }
    const perIncoming = frame.people.map((person, j) => {
        const e = byIncoming.get(j);
        if (!e) return clonePerson(person);
        if (e.deleted) { report.deleted++; return null; }
        report.edited_points += Object.values(e.points).reduce((n, m) => n + Object.keys(m).length, 0);
        return applyPoints(person, stored.people[e.input_person], e.points, sx, sy);
    });
    report.added = added.length;
    return { people: [...perIncoming.filter((p) => p !== null), ...added], perIncoming, added, report };
}

// ------------------------------------------------------------------ edit operations
// Each takes a person (edited in place) and the skeleton tables from /poselab/pose_editor/data.

function eachPresent(person, parts, fn) {
    for (const part of parts) for (const p of person[part] || []) if (p[2] > 0) fn(p);
}

/** Joints below `joint` in the skeleton tree (the joint included). */
export function descendants(tables, joint) {
    const out = [joint];
    for (const [child, parent] of Object.entries(tables.parent)) {
        if (parent === joint) out.push(...descendants(tables, Number(child)));
    }
    return out;
}

/** Move one point; a wrist takes its hand along and the nose the face. */
export function moveJoint(person, tables, part, index, x, y) {
    const p = person[part][index];
    const dx = x - p[0], dy = y - p[1];
    p[0] = x; p[1] = y;
    const attached = part === "body" ? tables.attached[String(index)] : null;
    if (attached) eachPresent(person, [attached], (q) => { q[0] += dx; q[1] += dy; });
}

function rotatePoint(p, cx, cy, cos, sin) {
    const dx = p[0] - cx, dy = p[1] - cy;
    p[0] = cx + cos * dx - sin * dy;
    p[1] = cy + sin * dx + cos * dy;
}

/** Rotate `joint` and everything below it (with attached hands and face) about its parent by
 * `angle` radians (screen angle, y down). The neck, the root, turns the whole person. */
export function rotateChain(person, tables, joint, angle) {
    const parent = tables.parent[String(joint)];
    const cos = Math.cos(angle), sin = Math.sin(angle);
    if (parent === undefined) {
        const c = person.body[joint];
        eachPresent(person, Object.keys(PARTS), (q) => { if (q !== c) rotatePoint(q, c[0], c[1], cos, sin); });
        return;
    }
    const pivot = person.body[parent];
    if (!(pivot[2] > 0)) return;
    for (const j of descendants(tables, joint)) {
        if (person.body[j][2] > 0) rotatePoint(person.body[j], pivot[0], pivot[1], cos, sin);
        const attached = tables.attached[String(j)];
        if (attached) eachPresent(person, [attached], (q) => rotatePoint(q, pivot[0], pivot[1], cos, sin));
    }
}

/** The joint a limb rotation turns about (null for the root). */
export const pivotOf = (tables, joint) => {
    const parent = tables.parent[String(joint)];
    return parent === undefined ? null : parent;
};

export function translatePerson(person, dx, dy) {
    eachPresent(person, Object.keys(PARTS), (q) => { q[0] += dx; q[1] += dy; });
}

export function scalePerson(person, factor, center) {
    const c = center || personCenter(person);
    if (!c) return;
    eachPresent(person, Object.keys(PARTS), (q) => {
        q[0] = c[0] + (q[0] - c[0]) * factor;
        q[1] = c[1] + (q[1] - c[1]) * factor;
    });
}

export function personCenter(person) {
    const b = bbox(person) || bbox(person, Object.keys(PARTS));
    return b ? [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] : null;
}

/** Mirror about the person's vertical centre line, swapping left and right (as Edit Pose does). */
export function mirrorPerson(person, tables) {
    const c = personCenter(person);
    if (!c) return person;
    const flipX = (pts) => pts && pts.map((q) => (q[2] > 0 ? [2 * c[0] - q[0], q[1], q[2]] : q.slice()));
    const body = flipX(person.body), face = flipX(person.face);
    const out = {
        body: tables.body_flip.map((k) => body[k]),
        left_hand: flipX(person.right_hand),
        right_hand: flipX(person.left_hand),
        face: face ? tables.face_flip.map((k) => face[k]) : null,
    };
    Object.assign(person, out);
    return person;
}

const present = (body, ...ids) => ids.every((i) => body[i][2] > 0);
const dist = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1]);

/** Torso size as parts.torso_scale: shoulder-hip sides, else neck-hip, else 1.4 x a width, else
 * a third of the height. */
export function torsoScale(body) {
    const sides = [[2, 8], [5, 11]].filter(([s, h]) => present(body, s, h)).map(([s, h]) => dist(body[s], body[h]) ** 2);
    if (sides.length) return Math.sqrt(sides.reduce((a, b) => a + b, 0) / sides.length);
    for (const h of [8, 11]) if (present(body, 1, h)) return dist(body[1], body[h]);
    for (const [a, b] of [[2, 5], [8, 11]]) if (present(body, a, b)) return 1.4 * dist(body[a], body[b]);
    const pts = body.filter((p) => p[2] > 0);
    if (pts.length < 2) return 0;
    const ys = pts.map((p) => p[1]), xs = pts.map((p) => p[0]);
    return (Math.max(...ys) - Math.min(...ys)) / 3 || (Math.max(...xs) - Math.min(...xs)) / 3;
}

/** A library pose (unit square) on a canvas, as library.get_pose places it. */
export function libraryPerson(body01, width, height) {
    const s = Math.min(width, height);
    const body = body01.map(([x, y, c]) => (c > 0 ? [(x - 0.5) * s + (width - 1) / 2, (y - 0.5) * s + (height - 1) / 2, 1] : [0, 0, 0]));
    return { body, left_hand: null, right_hand: null, face: null };
}

/** Give `person` the library pose's body, fitted to their torso size and position (as
 * library.fit_to_person); hands and face follow the wrists and the nose. */
export function applyLibraryPose(person, body01, tables, width, height) {
    const lib = libraryPerson(body01, width, height).body;
    const ref = person.body;
    const both = lib.map((p, i) => p[2] > 0 && ref[i][2] > 0);
    const mask = (b) => b.map((p, i) => (both[i] ? p : [0, 0, 0]));
    const sb = torsoScale(mask(lib)), sr = torsoScale(mask(ref));
    if (!(sb > 0 && sr > 0)) return false;
    let idx = [1, 2, 5, 8, 11].filter((i) => both[i]);
    if (!idx.length) idx = both.map((b, i) => (b ? i : -1)).filter((i) => i >= 0);
    const mean = (b) => [idx.reduce((a, i) => a + b[i][0], 0) / idx.length, idx.reduce((a, i) => a + b[i][1], 0) / idx.length];
    const cb = mean(lib), cr = mean(ref);
    const fitted = lib.map((p) => (p[2] > 0 ? [(p[0] - cb[0]) * (sr / sb) + cr[0], (p[1] - cb[1]) * (sr / sb) + cr[1], 1] : [0, 0, 0]));
    for (const [joint, part] of Object.entries(tables.attached)) {
        const j = Number(joint);
        if (person[part] && ref[j][2] > 0 && fitted[j][2] > 0) {
            const dx = fitted[j][0] - ref[j][0], dy = fitted[j][1] - ref[j][1];
            for (const q of person[part]) if (q[2] > 0) { q[0] += dx; q[1] += dy; }
        }
    }
    person.body = fitted;
    return true;
}
