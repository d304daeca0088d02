// A structural diff of two JSON documents: the paths that were added, removed or changed.

const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** -> [{path: "a.b[2]", op: "added"|"removed"|"changed", before, after}] in path order. */
export function diff(a, b, path = "", out = []) {
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      const p = path ? `${path}.${k}` : k;
      if (!(k in b)) out.push({ path: p, op: "removed", before: a[k] });
      else if (!(k in a)) out.push({ path: p, op: "added", after: b[k] });
      else diff(a[k], b[k], p, out);
    }
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const p = `${path}[${i}]`;
      if (i >= b.length) out.push({ path: p, op: "removed", before: a[i] });
      else if (i >= a.length) out.push({ path: p, op: "added", after: b[i] });
      else diff(a[i], b[i], p, out);
    }
    return out;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    if (a === undefined) out.push({ path: path || "(root)", op: "added", after: b });
    else out.push({ path: path || "(root)", op: "changed", before: a, after: b });
  }
  return out;
}
