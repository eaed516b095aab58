import Foundation

/// Resampling of `[B, C, H, W]` maps with PyTorch `F.interpolate(..., align_corners=False)`
/// semantics, and nearest-neighbour resizing of label maps.
///
/// Source coordinate of output index `d` along an axis of input size `n` and output size
/// `m` (PyTorch `area_pixel_compute_source_index`, computed in Float like PyTorch's CPU
/// kernels for float tensors):
///
///     scale = n / m                (or 1/scale_factor when the caller gives one)
///     s(d)  = scale · (d + ½) − ½
///
/// * **bilinear**: `s` clamped below at 0; `i0 = ⌊s⌋`, `i1 = i0 + 1` unless `i0 = n − 1`;
///   `λ = s − i0`; `out = (1−λ_y)((1−λ_x) a00 + λ_x a01) + λ_y((1−λ_x) a10 + λ_x a11)`.
///   The backward (`bilinearBackward`) is the exact adjoint: each output gradient is
///   scattered with the same four weights.
/// * **bicubic** (`upsample_bicubic2d`): `s` not clamped; `i = ⌊s⌋`, `t = s − i`; taps at
///   `i−1 … i+2`, each index clamped to `[0, n−1]`, weights of the cubic convolution kernel
///   with `A = −0.75`:
///   `w(x) = ((A+2)|x| − (A+3))x² + 1` for `|x| ≤ 1`, `A|x|³ − 5A x² + 8A|x| − 4A` for `1 < |x| < 2`,
///   evaluated at `t+1, t, 1−t, 2−t`. Separable: rows, then columns.
/// * **nearest** (label maps): OpenCV `INTER_NEAREST`, which mmseg's `imresize` (cv2
///   backend, its default) uses for segmentation maps: `src = min(⌊d · (1 / (m / n))⌋, n − 1)`
///   in double precision, i.e. the top-left-aligned rule of `torch`'s legacy `"nearest"`
///   mode — *not* PIL's centre rule `⌊(d + ½) · n/m⌋`.
public enum Resample {
    /// PyTorch's source-index scale: `n/m`, or `1/scaleFactor` when a scale factor is given.
    @inline(__always)
    static func sourceScale(input n: Int, output m: Int, scaleFactor: Double?) -> Float {
        if let f = scaleFactor, f > 0 { return Float(1 / f) }
        return Float(n) / Float(m)
    }

    // MARK: Bilinear

    /// Per output index: the two source indices and their weights (unsafe storage: read in
    /// the hot loops without bounds checks).
    final class LinearTaps {
        let i0: UnsafeMutablePointer<Int>, i1: UnsafeMutablePointer<Int>
        let w0: UnsafeMutablePointer<Float>, w1: UnsafeMutablePointer<Float>

        init(input n: Int, output m: Int, scaleFactor: Double?) {
            i0 = .allocate(capacity: Swift.max(m, 1)); i1 = .allocate(capacity: Swift.max(m, 1))
            w0 = .allocate(capacity: Swift.max(m, 1)); w1 = .allocate(capacity: Swift.max(m, 1))
            let identity = n == m && scaleFactor == nil
            let scale = sourceScale(input: n, output: m, scaleFactor: scaleFactor)
            for d in 0..<m {
                if identity {
                    i0[d] = d; i1[d] = d; w0[d] = 1; w1[d] = 0
                    continue
                }
                var s = scale * (Float(d) + 0.5) - 0.5
                if s < 0 { s = 0 }
                let i = Swift.min(Int(s), n - 1)
                let l = Swift.min(Swift.max(s - Float(i), 0), 1)
                i0[d] = i
                i1[d] = i + (i < n - 1 ? 1 : 0)
                w1[d] = l
                w0[d] = 1 - l
            }
        }

        deinit { i0.deallocate(); i1.deallocate(); w0.deallocate(); w1.deallocate() }
    }

    /// The bilinear resize of `[H, W]` planes to `[OH, OW]` one output row at a time — what
    /// `bilinear` runs per row, for callers that consume a few rows of many planes before
    /// moving on (`Mask2FormerHead.semanticLogits` upsamples, applies σ and contracts over
    /// the queries tile by tile): the same taps and the same expression, so the same bits.
    // @unchecked: immutable after init; the taps' buffers are only read.
    public final class BilinearRows: @unchecked Sendable {
        public let inputHeight: Int, inputWidth: Int, outputHeight: Int, outputWidth: Int
        let ty: LinearTaps, tx: LinearTaps

        public init(input: (h: Int, w: Int), output: (h: Int, w: Int), scaleFactor: (h: Double, w: Double)? = nil) {
            inputHeight = input.h; inputWidth = input.w; outputHeight = output.h; outputWidth = output.w
            ty = LinearTaps(input: input.h, output: output.h, scaleFactor: scaleFactor?.h)
            tx = LinearTaps(input: input.w, output: output.w, scaleFactor: scaleFactor?.w)
        }

        /// Output row `oy` of the plane `plane` [H, W] → `out` [OW].
        @inline(__always)
        public func row(_ oy: Int, of plane: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
            let W = inputWidth
            let a = plane + ty.i0[oy] * W, b = plane + ty.i1[oy] * W
            let wy0 = ty.w0[oy], wy1 = ty.w1[oy]
            for ox in 0..<outputWidth {
                let x0 = tx.i0[ox], x1 = tx.i1[ox], wx0 = tx.w0[ox], wx1 = tx.w1[ox]
                out[ox] = wy0 * (wx0 * a[x0] + wx1 * a[x1]) + wy1 * (wx0 * b[x0] + wx1 * b[x1])
            }
        }
    }

    /// input [B, C, H, W] → output [B, C, OH, OW] (written), bilinear, `align_corners=False`.
    /// `scaleFactor` (h, w) reproduces a call with `scale_factor=` instead of `size=`.
    public static func bilinear(_ input: Tensor, into output: Tensor, scaleFactor: (h: Double, w: Double)? = nil) {
        let (planes, H, W, OH, OW) = planeShapes(input, output, "bilinear")
        let resize = BilinearRows(input: (H, W), output: (OH, OW), scaleFactor: scaleFactor)
        let src = input.data, dst = output.data
        Parallel.forEach(planes * OH, grain: Swift.max(1, Kernels.elementGrain / Swift.max(OW * 4, 1))) { r in
            for row in r {
                let p = row / OH, oy = row % OH
                resize.row(oy, of: src + p * H * W, into: dst + row * OW)
            }
        }
    }

    /// The adjoint of `bilinear`: accumulates `dInput [B, C, H, W] += Bᵀ dOutput [B, C, OH, OW]`.
    public static func bilinearBackward(dOutput: Tensor, dInput: Tensor, scaleFactor: (h: Double, w: Double)? = nil) {
        let (planes, H, W, OH, OW) = planeShapes(dInput, dOutput, "bilinearBackward")
        let ty = LinearTaps(input: H, output: OH, scaleFactor: scaleFactor?.h)
        let tx = LinearTaps(input: W, output: OW, scaleFactor: scaleFactor?.w)
        let dOut = dOutput.data, dIn = dInput.data
        // One plane per task: scatters never cross planes, so planes run in parallel.
        Parallel.forEach(planes, grain: 1) { r in
            for p in r {
                let gIn = dIn + p * H * W
                for oy in 0..<OH {
                    let a = gIn + ty.i0[oy] * W, b = gIn + ty.i1[oy] * W
                    let wy0 = ty.w0[oy], wy1 = ty.w1[oy]
                    let g = dOut + (p * OH + oy) * OW
                    for ox in 0..<OW {
                        let x0 = tx.i0[ox], x1 = tx.i1[ox], wx0 = tx.w0[ox], wx1 = tx.w1[ox]
                        let v = g[ox]
                        a[x0] += wy0 * wx0 * v
                        a[x1] += wy0 * wx1 * v
                        b[x0] += wy1 * wx0 * v
                        b[x1] += wy1 * wx1 * v
                    }
                }
            }
        }
    }

    // MARK: Bicubic

    /// The cubic convolution weights for fraction `t` (PyTorch `get_cubic_upsample_coefficients`).
    @inline(__always)
    public static func cubicCoefficients(_ t: Float, A: Float = -0.75) -> (Float, Float, Float, Float) {
        func near(_ x: Float) -> Float { ((A + 2) * x - (A + 3)) * x * x + 1 }          // |x| ≤ 1
        func far(_ x: Float) -> Float { ((A * x - 5 * A) * x + 8 * A) * x - 4 * A }    // 1 < |x| < 2
        return (far(t + 1), near(t), near(1 - t), far(2 - t))
    }

    /// Per output index: four clamped source indices and their cubic weights.
    final class CubicTaps {
        let index: UnsafeMutablePointer<Int>     // 4 per output index, clamped to [0, n − 1]
        let weight: UnsafeMutablePointer<Float>  // 4 per output index

        init(input n: Int, output m: Int, scaleFactor: Double?) {
            index = .allocate(capacity: Swift.max(4 * m, 1))
            weight = .allocate(capacity: Swift.max(4 * m, 1))
            let identity = n == m && scaleFactor == nil
            let scale = sourceScale(input: n, output: m, scaleFactor: scaleFactor)
            for d in 0..<m {
                let s = identity ? Float(d) : scale * (Float(d) + 0.5) - 0.5
                let i = Swift.min(Int(s.rounded(.down)), n - 1)
                let t = Swift.min(Swift.max(s - Float(i), 0), 1)
                let w = cubicCoefficients(t)
                let ws = (w.0, w.1, w.2, w.3)
                weight[4 * d] = ws.0; weight[4 * d + 1] = ws.1; weight[4 * d + 2] = ws.2; weight[4 * d + 3] = ws.3
                for k in 0..<4 { index[4 * d + k] = Swift.min(Swift.max(i - 1 + k, 0), n - 1) }
            }
        }

        deinit { index.deallocate(); weight.deallocate() }
    }

    /// input [B, C, H, W] → output [B, C, OH, OW] (written), bicubic (A = −0.75),
    /// `align_corners=False`, as `F.interpolate(x, size=(OH, OW), mode="bicubic")` (or with
    /// `scale_factor=` when `scaleFactor` is given).
    public static func bicubic(_ input: Tensor, into output: Tensor, scaleFactor: (h: Double, w: Double)? = nil) {
        let (planes, H, W, OH, OW) = planeShapes(input, output, "bicubic")
        let ty = CubicTaps(input: H, output: OH, scaleFactor: scaleFactor?.h)
        let tx = CubicTaps(input: W, output: OW, scaleFactor: scaleFactor?.w)
        let src = input.data, dst = output.data
        Parallel.forEach(planes, grain: 1) { r in
            // Horizontal pass into a per-task [H, OW] buffer, then vertical.
            let tmp = UnsafeMutablePointer<Float>.allocate(capacity: H * OW)
            defer { tmp.deallocate() }
            for p in r {
                let plane = src + p * H * W
                for y in 0..<H {
                    let row = plane + y * W, t = tmp + y * OW
                    for ox in 0..<OW {
                        let k = 4 * ox
                        t[ox] = tx.weight[k] * row[tx.index[k]] + tx.weight[k + 1] * row[tx.index[k + 1]]
                              + tx.weight[k + 2] * row[tx.index[k + 2]] + tx.weight[k + 3] * row[tx.index[k + 3]]
                    }
                }
                let out = dst + p * OH * OW
                for oy in 0..<OH {
                    let k = 4 * oy
                    let r0 = tmp + ty.index[k] * OW, r1 = tmp + ty.index[k + 1] * OW
                    let r2 = tmp + ty.index[k + 2] * OW, r3 = tmp + ty.index[k + 3] * OW
                    let w0 = ty.weight[k], w1 = ty.weight[k + 1], w2 = ty.weight[k + 2], w3 = ty.weight[k + 3]
                    let o = out + oy * OW
                    for ox in 0..<OW { o[ox] = w0 * r0[ox] + w1 * r1[ox] + w2 * r2[ox] + w3 * r3[ox] }
                }
            }
        }
    }

    // MARK: Nearest (label maps)

    /// The source index of every output index under OpenCV `INTER_NEAREST`.
    public static func nearestIndices(input n: Int, output m: Int) -> [Int] {
        let inverse = 1 / (Double(m) / Double(n))
        return (0..<m).map { Swift.min(Int((Double($0) * inverse).rounded(.down)), n - 1) }
    }

    /// Nearest-neighbour resize of an interleaved `[H, W, channels]` map (labels: channels = 1)
    /// into `[outHeight, outWidth, channels]`, OpenCV `INTER_NEAREST` rule.
    public static func nearest<T>(_ src: UnsafePointer<T>, height: Int, width: Int, channels: Int = 1,
                                  into dst: UnsafeMutablePointer<T>, outHeight: Int, outWidth: Int) {
        let ys = nearestIndices(input: height, output: outHeight)
        let xs = nearestIndices(input: width, output: outWidth)
        Parallel.forEach(outHeight, grain: Swift.max(1, Kernels.elementGrain / Swift.max(outWidth * channels, 1))) { r in
            for oy in r {
                let srow = src + ys[oy] * width * channels, drow = dst + oy * outWidth * channels
                for ox in 0..<outWidth {
                    let s = srow + xs[ox] * channels, d = drow + ox * channels
                    for c in 0..<channels { d[c] = s[c] }
                }
            }
        }
    }

    /// Array form of `nearest` for label maps.
    public static func nearest(_ labels: [UInt8], height: Int, width: Int, outHeight: Int, outWidth: Int) -> [UInt8] {
        precondition(labels.count == height * width, "nearest: \(labels.count) labels for \(height)×\(width)")
        var out = [UInt8](repeating: 0, count: outHeight * outWidth)
        labels.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                nearest(s.baseAddress!, height: height, width: width, into: d.baseAddress!,
                        outHeight: outHeight, outWidth: outWidth)
            }
        }
        return out
    }

    private static func planeShapes(_ input: Tensor, _ output: Tensor, _ what: String) -> (Int, Int, Int, Int, Int) {
        precondition(input.rank == 4 && output.rank == 4 && input.shape[0] == output.shape[0]
                     && input.shape[1] == output.shape[1],
                     "Resample.\(what): input \(input.shape) and output \(output.shape) must be [B, C, ·, ·] alike")
        return (input.shape[0] * input.shape[1], input.shape[2], input.shape[3], output.shape[2], output.shape[3])
    }
}
