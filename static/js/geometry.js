// Coordinate transforms between image pixels, the resized-1024 model frame, the 256x256
// low-res logit frame and the displayed canvas. Same rules as annotator_backend/decoding.py.
// Pure functions: usable on the main thread, in workers and under node.

export const MODEL_SIZE = 1024;
export const LOW_RES = 256;

/** Scale from image pixels to the resized-1024 frame (longest side). */
export function resizeScale(width, height) {
  return MODEL_SIZE / Math.max(width, height);
}

/** [w, h] of the image resized so that its longest side is 1024 (ResizeLongestSide). */
export function resizedSize(width, height) {
  const s = resizeScale(width, height);
  return [Math.floor(width * s + 0.5), Math.floor(height * s + 0.5)];
}

/** [w, h] of the image's part of the 256x256 low-res frame, rounded up. */
export function lowResExtent(width, height) {
  const [rw, rh] = resizedSize(width, height);
  return [Math.ceil((rw * LOW_RES) / MODEL_SIZE), Math.ceil((rh * LOW_RES) / MODEL_SIZE)];
}

/**
 * Prompt points in image pixels -> ONNX inputs. points: [{x, y, label}], label 1 positive,
 * 0 negative; box: {x0, y0, x1, y1} or null. Without a box a padding point (0, 0) with
 * label -1 is appended, as the official demo does. Returns {coords: Float32Array [N*2],
 * labels: Float32Array [N], count: N}.
 */
export function modelInputs(points, box, width, height) {
  const [rw, rh] = resizedSize(width, height);
  const sx = rw / width;
  const sy = rh / height;
  const n = points.length + (box ? 2 : 1);
  const coords = new Float32Array(n * 2);
  const labels = new Float32Array(n);
  points.forEach((p, i) => {
    coords[2 * i] = p.x * sx;
    coords[2 * i + 1] = p.y * sy;
    labels[i] = p.label;
  });
  const k = points.length;
  if (box) {
    coords.set([box.x0 * sx, box.y0 * sy, box.x1 * sx, box.y1 * sy], 2 * k);
    labels.set([2, 3], k);
  } else {
    labels[k] = -1; // padding point at the origin
  }
  return { coords, labels, count: n };
}

/**
 * Size at which an image of (width, height) is displayed inside a (maxW, maxH) box, keeping
 * its aspect ratio; small images are enlarged up to `maxZoom`.
 */
export function fitSize(width, height, maxW, maxH, maxZoom = 4) {
  const z = Math.min(maxW / width, maxH / height, maxZoom);
  return [Math.max(1, Math.round(width * z)), Math.max(1, Math.round(height * z))];
}

/**
 * The part of the image shown on the canvas: zoom z >= 1 (1 = the whole image) around the
 * centre (cx, cy) in image pixels. Returns {x, y, w, h}: the visible image rectangle.
 */
export function viewRect(view, width, height) {
  const z = view ? Math.max(1, view.z) : 1;
  const w = width / z;
  const h = height / z;
  const cx = view ? view.cx : width / 2;
  const cy = view ? view.cy : height / 2;
  return {
    x: Math.min(Math.max(cx - w / 2, 0), width - w),
    y: Math.min(Math.max(cy - h / 2, 0), height - h),
    w,
    h,
  };
}

/**
 * A point on an element (client coords) -> continuous image pixel coords, clamped inside.
 * `view` (optional): the zoom/pan state (see viewRect).
 */
export function clientToImage(clientX, clientY, rect, width, height, view = null) {
  const v = viewRect(view, width, height);
  const x = v.x + ((clientX - rect.left) / rect.width) * v.w;
  const y = v.y + ((clientY - rect.top) / rect.height) * v.h;
  return {
    x: Math.min(Math.max(x, 0), width),
    y: Math.min(Math.max(y, 0), height),
  };
}

/** Image pixel coords -> canvas pixel coords for a canvas of (cw, ch) showing `view`. */
export function imageToCanvas(x, y, width, height, cw, ch, view = null) {
  const v = viewRect(view, width, height);
  return { x: ((x - v.x) * cw) / v.w, y: ((y - v.y) * ch) / v.h };
}

/**
 * Interpolation table of one axis, as torch's bilinear resize with align_corners=False:
 * for each output index d, the source index i0, its neighbour i1 and the weight of i1.
 * `scale` is source units per output unit; `inSize` the source length.
 */
export function axisTable(outSize, inSize, scale) {
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w1 = new Float32Array(outSize);
  for (let d = 0; d < outSize; d++) {
    let src = scale * (d + 0.5) - 0.5;
    if (src < 0) src = 0;
    let a = Math.floor(src);
    if (a > inSize - 1) a = inSize - 1;
    i0[d] = a;
    i1[d] = a < inSize - 1 ? a + 1 : a;
    w1[d] = src - a;
  }
  return { i0, i1, w1 };
}

/** One display axis of a view: bilinear table into the low-res frame + nearest image pixel. */
function viewAxis(out, size, start, span, lowPerPixel) {
  const t = axisTable(out, LOW_RES, 0);
  const px = new Int32Array(out);
  for (let d = 0; d < out; d++) {
    const x = start + ((d + 0.5) * span) / out; // image coordinate of the display pixel centre
    px[d] = Math.min(size - 1, Math.max(0, Math.floor(x)));
    let src = x * lowPerPixel - 0.5;
    if (src < 0) src = 0;
    let a = Math.floor(src);
    if (a > LOW_RES - 1) a = LOW_RES - 1;
    t.i0[d] = a;
    t.i1[d] = a < LOW_RES - 1 ? a + 1 : a;
    t.w1[d] = src - a;
  }
  t.px = px;
  return t;
}

/**
 * Tables that sample the low-res logits (bilinear) and image-resolution layers (nearest) at
 * the centre of each display pixel, for an image of (width, height) whose `view` is shown at
 * (dw, dh). The image occupies the top-left (rw/4 x rh/4) part of the 256x256 frame, so one
 * bilinear step maps it straight to the display. Built once per image, size and view; every
 * decode reuses them.
 */
export function displayTables(width, height, dw, dh, view = null) {
  const [rw, rh] = resizedSize(width, height);
  const v = viewRect(view, width, height);
  return {
    width: dw,
    height: dh,
    x: viewAxis(dw, width, v.x, v.w, (rw * LOW_RES) / MODEL_SIZE / width),
    y: viewAxis(dh, height, v.y, v.h, (rh * LOW_RES) / MODEL_SIZE / height),
  };
}
