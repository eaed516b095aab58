import Numerics

/// The multi-scale deformable attention core (Deformable-DETR; mmcv's
/// `multi_scale_deformable_attn_pytorch` and its CUDA kernel compute the same thing):
///
///     value      [B, S, NH, D]         S = Σ_l H_l·W_l, level l's pixels row-major from start_l
///     locations  [B, Q, NH, L, P, 2]   (x, y) ∈ [0, 1] per level (normalised, x along W)
///     weights    [B, Q, NH, L, P]      (already softmax-normalised by the caller)
///     out[b, q, h·D + d] = Σ_{l,p} weights[b,q,h,l,p] · bilinear_l(value[b, ·, h, d], locations[b,q,h,l,p])
///
/// with `bilinear_l` the `grid_sample(align_corners=False, padding_mode="zeros")` sampling of
/// level l's `[H_l, W_l]` map (`BilinearTap`). Backward, with g = ∂L/∂out[b, q, h·D : (h+1)·D]
/// and s the sampled D-vector:
///
///     ∂L/∂weights[b,q,h,l,p] = g · s
///     ∂L/∂value[b, corner, h, :] += weights · w_corner · g
///     ∂L/∂locations[b,q,h,l,p] = weights · (W_l · g·∂s/∂px, H_l · g·∂s/∂py)
///
/// The forward runs over (b, q) rows in parallel; the backward over (b, h) pairs, each of
/// which owns a disjoint slice of ∂value, so the scatter needs no atomics.
public enum DeformableAttentionCore {
    /// Start index of each level in the flattened S axis.
    public static func levelStarts(_ shapes: [(h: Int, w: Int)]) -> [Int] {
        var s = [Int](), acc = 0
        for sh in shapes { s.append(acc); acc += sh.h * sh.w }
        return s
    }

    private static func dims(_ value: Tensor, _ shapes: [(h: Int, w: Int)], _ locations: Tensor, _ weights: Tensor)
        -> (B: Int, S: Int, NH: Int, D: Int, Q: Int, L: Int, P: Int) {
        precondition(value.rank == 4, "DeformableAttentionCore: value \(value.shape), expected [B, S, NH, D]")
        let (B, S, NH, D) = (value.shape[0], value.shape[1], value.shape[2], value.shape[3])
        precondition(shapes.reduce(0) { $0 + $1.h * $1.w } == S, "DeformableAttentionCore: level shapes \(shapes) for S = \(S)")
        precondition(locations.rank == 6 && locations.shape[0] == B && locations.shape[2] == NH
                     && locations.shape[3] == shapes.count && locations.shape[5] == 2,
                     "DeformableAttentionCore: locations \(locations.shape)")
        let (Q, L, P) = (locations.shape[1], locations.shape[3], locations.shape[4])
        precondition(weights.shape == [B, Q, NH, L, P], "DeformableAttentionCore: weights \(weights.shape)")
        return (B, S, NH, D, Q, L, P)
    }

    /// out [B, Q, NH·D] (written).
    public static func forward(value: Tensor, shapes: [(h: Int, w: Int)], locations: Tensor, weights: Tensor,
                               into out: Tensor) {
        let (B, S, NH, D, Q, L, P) = dims(value, shapes, locations, weights)
        precondition(out.count == B * Q * NH * D, "DeformableAttentionCore: output \(out.shape)")
        let starts = levelStarts(shapes)
        let vp = value.data, lp = locations.data, wp = weights.data, op = out.data
        let hs = shapes.map(\.h), ws = shapes.map(\.w)
        let rowStride = NH * D
        Parallel.forEach(B * Q, grain: 8) { range in
            for bq in range {
                let b = bq / Q
                let o = op + bq * rowStride
                o.update(repeating: 0, count: rowStride)
                for h in 0..<NH {
                    let oh = o + h * D
                    for l in 0..<L {
                        let base = vp + ((b * S + starts[l]) * NH + h) * D   // value[b, start_l, h, 0]
                        let pixStride = NH * D
                        for p in 0..<P {
                            let k = (((bq * NH + h) * L + l) * P + p)
                            let a = wp[k]
                            let t = BilinearTap(x: lp[2 * k], y: lp[2 * k + 1], width: ws[l], height: hs[l])
                            if t.i00 >= 0 { let c = a * t.w00, v = base + t.i00 * pixStride; for d in 0..<D { oh[d] += c * v[d] } }
                            if t.i01 >= 0 { let c = a * t.w01, v = base + t.i01 * pixStride; for d in 0..<D { oh[d] += c * v[d] } }
                            if t.i10 >= 0 { let c = a * t.w10, v = base + t.i10 * pixStride; for d in 0..<D { oh[d] += c * v[d] } }
                            if t.i11 >= 0 { let c = a * t.w11, v = base + t.i11 * pixStride; for d in 0..<D { oh[d] += c * v[d] } }
                        }
                    }
                }
            }
        }
    }

    /// Accumulates ∂value [B, S, NH, D], ∂locations [B, Q, NH, L, P, 2] and ∂weights
    /// [B, Q, NH, L, P] (each only when given) from ∂out [B, Q, NH·D].
    public static func backward(dOutput: Tensor, value: Tensor, shapes: [(h: Int, w: Int)], locations: Tensor,
                                weights: Tensor, dValue: Tensor?, dLocations: Tensor?, dWeights: Tensor?) {
        let (B, S, NH, D, Q, L, P) = dims(value, shapes, locations, weights)
        precondition(dOutput.count == B * Q * NH * D, "DeformableAttentionCore: dOutput \(dOutput.shape)")
        if let t = dValue { precondition(t.count == value.count, "DeformableAttentionCore: dValue \(t.shape)") }
        if let t = dLocations { precondition(t.count == locations.count, "DeformableAttentionCore: dLocations \(t.shape)") }
        if let t = dWeights { precondition(t.count == weights.count, "DeformableAttentionCore: dWeights \(t.shape)") }
        let starts = levelStarts(shapes)
        let vp = value.data, lp = locations.data, wp = weights.data, gp = dOutput.data
        let dv = dValue?.data, dl = dLocations?.data, dw = dWeights?.data
        let hs = shapes.map(\.h), ws = shapes.map(\.w)
        let pixStride = NH * D
        Parallel.forEach(B * NH) { range in
            for bh in range {
                let b = bh / NH, h = bh % NH
                for q in 0..<Q {
                    let bq = b * Q + q
                    let g = gp + bq * NH * D + h * D
                    for l in 0..<L {
                        let offset = ((b * S + starts[l]) * NH + h) * D
                        let base = vp + offset
                        let W = ws[l], H = hs[l]
                        for p in 0..<P {
                            let k = (((bq * NH + h) * L + l) * P + p)
                            let a = wp[k]
                            let t = BilinearTap(x: lp[2 * k], y: lp[2 * k + 1], width: W, height: H)
                            // g · m[corner] for the four corners (0 outside).
                            var g00: Float = 0, g01: Float = 0, g10: Float = 0, g11: Float = 0
                            if t.i00 >= 0 { let v = base + t.i00 * pixStride; for d in 0..<D { g00 += g[d] * v[d] } }
                            if t.i01 >= 0 { let v = base + t.i01 * pixStride; for d in 0..<D { g01 += g[d] * v[d] } }
                            if t.i10 >= 0 { let v = base + t.i10 * pixStride; for d in 0..<D { g10 += g[d] * v[d] } }
                            if t.i11 >= 0 { let v = base + t.i11 * pixStride; for d in 0..<D { g11 += g[d] * v[d] } }
                            if let dw {
                                dw[k] += t.w00 * g00 + t.w01 * g01 + t.w10 * g10 + t.w11 * g11
                            }
                            if let dl {
                                let dpx = (1 - t.ly) * (g01 - g00) + t.ly * (g11 - g10)
                                let dpy = (1 - t.lx) * (g10 - g00) + t.lx * (g11 - g01)
                                dl[2 * k] += a * Float(W) * dpx
                                dl[2 * k + 1] += a * Float(H) * dpy
                            }
                            if let dv {
                                let dbase = dv + offset
                                if t.i00 >= 0 { let c = a * t.w00, o = dbase + t.i00 * pixStride; for d in 0..<D { o[d] += c * g[d] } }
                                if t.i01 >= 0 { let c = a * t.w01, o = dbase + t.i01 * pixStride; for d in 0..<D { o[d] += c * g[d] } }
                                if t.i10 >= 0 { let c = a * t.w10, o = dbase + t.i10 * pixStride; for d in 0..<D { o[d] += c * g[d] } }
                                if t.i11 >= 0 { let c = a * t.w11, o = dbase + t.i11 * pixStride; for d in 0..<D { o[d] += c * g[d] } }
                            }
                        }
                    }
                }
            }
        }
    }
}
