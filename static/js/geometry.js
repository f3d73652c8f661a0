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

/** A point on an element (client coords) -> continuous image pixel coords, clamped inside. */
export function clientToImage(clientX, clientY, rect, width, height) {
  const x = ((clientX - rect.left) / rect.width) * width;
  const y = ((clientY - rect.top) / rect.height) * height;
  return {
    x: Math.min(Math.max(x, 0), width),
    y: Math.min(Math.max(y, 0), height),
  };
}

/** Image pixel coords -> canvas pixel coords for a canvas of (cw, ch) showing the image. */
export function imageToCanvas(x, y, width, height, cw, ch) {
  return { x: (x * cw) / width, y: (y * ch) / height };
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

/**
 * Tables that sample the low-res logits at the centre of each display pixel, for an image of
 * (width, height) shown at (dw, dh): the image occupies the top-left (rw/4 x rh/4) part of the
 * 256x256 frame, so one bilinear step maps the cropped region straight to the display.
 * Computed once per image and display size; every decode reuses them.
 */
export function displayTables(width, height, dw, dh) {
  const [rw, rh] = resizedSize(width, height);
  const cropW = (rw * LOW_RES) / MODEL_SIZE;
  const cropH = (rh * LOW_RES) / MODEL_SIZE;
  return {
    width: dw,
    height: dh,
    x: axisTable(dw, LOW_RES, cropW / dw),
    y: axisTable(dh, LOW_RES, cropH / dh),
  };
}
