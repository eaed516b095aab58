import Foundation
import Numerics

/// Orthonormal 2-D transforms of per-channel `h×w` feature maps, stored token-major.
///
/// A map batch is `[h, w, C]` row-major (the patch tokens of one image: token `u·w + v`,
/// channel `c`). Every transform here is orthonormal, `T⁻¹ = Tᵀ`, and built from
/// *stages*: a stage acts on the top-left `hs×ws` block of the grid as
///
///     F[u, v, c] = Σ_i Σ_j A_h[u, i] · A_w[v, j] · X[i, j, c]      (u, i < hs; v, j < ws)
///
/// computed as two matrix products: `Y = A_h · X` with `X` read as `[hs, ws·C]` (one GEMM
/// for all channels), then `F[u] = A_w · Y[u]` with `Y[u]` read as `[ws, C]` (one GEMM per
/// row `u`). The inverse applies the stages in reverse order with `A_hᵀ`, `A_wᵀ`.
///
/// * `dct`      one stage, `A_n = D_n` (orthonormal DCT-II, see `DCTMatrix.swift`).
/// * `fft`      one stage with the orthonormal cas matrices (`HartleyMatrix.swift`), then the
///              fix-up `H = ½(E[u,v] + E[−u,v] + E[u,−v] − E[−u,−v])` that turns the
///              separable cas–cas transform `E` into the true 2-D discrete Hartley transform
///              (`Re − Im` of the orthonormal 2-D DFT). `H` is symmetric and self-inverse.
/// * `haar`     Mallat layout: one stage per level on the shrinking approximation block
///              (`HaarMatrix.swift`), as long as both sides of the block are even.
/// * `identity` no stage (Rein: tokens act on the spatial features).
///
/// The backward pass of `forward` is `inverse` and vice versa (orthonormality), so the
/// same two calls serve the layer's forward and backward passes.
public enum TransformKind: String, CaseIterable, Sendable, Decodable {
    case dct, fft, haar, identity
}

/// One separable stage on the top-left `hs×ws` block.
struct TransformStage {
    let hs: Int
    let ws: Int
    /// `[hs, hs]` row-major.
    let ah: [Float]
    /// `[ws, ws]` row-major.
    let aw: [Float]
}

/// A 2-D orthonormal transform for one grid size, applied to `[h, w, C]` maps.
/// Holds a scratch buffer, so one instance must not be used from two threads at once.
public final class SpectralTransform {
    public let kind: TransformKind
    public let h: Int
    public let w: Int
    let stages: [TransformStage]
    private var scratch: Tensor = Tensor(zeros: [0])

    public init(kind: TransformKind, h: Int, w: Int) {
        precondition(h > 0 && w > 0, "SpectralTransform grid \(h)×\(w)")
        self.kind = kind
        self.h = h
        self.w = w
        switch kind {
        case .identity:
            stages = []
        case .dct:
            stages = [TransformStage(hs: h, ws: w, ah: DCTMatrix.make(h), aw: DCTMatrix.make(w))]
        case .fft:
            stages = [TransformStage(hs: h, ws: w, ah: HartleyMatrix.make(h), aw: HartleyMatrix.make(w))]
        case .haar:
            var s: [TransformStage] = []
            var (hs, ws) = (h, w)
            while hs % 2 == 0 && ws % 2 == 0 && hs >= 2 && ws >= 2 {
                s.append(TransformStage(hs: hs, ws: ws, ah: HaarMatrix.level(hs), aw: HaarMatrix.level(ws)))
                hs /= 2
                ws /= 2
            }
            stages = s
        }
    }

    /// The number of Haar levels (0 for the other transforms).
    public var levels: Int { kind == .haar ? stages.count : 0 }

    /// The normalised frequency of coefficient row `u` along a side of length `n` (1 = Nyquist):
    /// `u/n` for `dct`, `haar` (and `identity`, where it is the spatial position),
    /// `2·min(u, n−u)/n` for `fft`.
    public func frequency(_ u: Int, _ n: Int) -> Double {
        switch kind {
        case .fft: return 2 * Double(Swift.min(u, n - u)) / Double(n)
        case .dct, .haar, .identity: return Double(u) / Double(n)
        }
    }

    /// `ρ = √(ρ_u² + ρ_v²)` for every coefficient, `[h·w]` row-major.
    public func radialFrequency() -> [Double] {
        var rho = [Double](repeating: 0, count: h * w)
        for u in 0..<h {
            let ru = frequency(u, h)
            for v in 0..<w {
                let rv = frequency(v, w)
                rho[u * w + v] = (ru * ru + rv * rv).squareRoot()
            }
        }
        return rho
    }

    // MARK: forward / inverse

    /// `dst[b] = T(src[b])` for `batch` maps of `[h, w, channels]`; map `b` starts at
    /// `src + b·srcStride` (and `dst + b·dstStride`), its `h·w·channels` floats contiguous.
    /// `src` and `dst` must not overlap.
    public func forward(src: UnsafePointer<Float>, srcStride: Int, dst: UnsafeMutablePointer<Float>, dstStride: Int,
                        batch: Int, channels c: Int) {
        let n = h * w * c
        ensureScratch(n)
        for b in 0..<batch {
            let s = src + b * srcStride
            let d = dst + b * dstStride
            if stages.isEmpty {
                d.update(from: s, count: n)
                continue
            }
            apply(stages[0], from: s, to: d, channels: c, transposed: false)
            for stage in stages.dropFirst() {
                apply(stage, from: UnsafePointer(d), to: d, channels: c, transposed: false)
            }
            if kind == .fft { hartleyFixUp(d, channels: c) }
        }
    }

    /// `dst[b] = T⁻¹(src[b]) = Tᵀ(src[b])`; layout as `forward`.
    public func inverse(src: UnsafePointer<Float>, srcStride: Int, dst: UnsafeMutablePointer<Float>, dstStride: Int,
                        batch: Int, channels c: Int) {
        if kind == .fft {
            // The 2-D Hartley transform is symmetric and self-inverse.
            forward(src: src, srcStride: srcStride, dst: dst, dstStride: dstStride, batch: batch, channels: c)
            return
        }
        let n = h * w * c
        ensureScratch(n)
        for b in 0..<batch {
            let s = src + b * srcStride
            let d = dst + b * dstStride
            if stages.count == 1 {
                apply(stages[0], from: s, to: d, channels: c, transposed: true)
                continue
            }
            d.update(from: s, count: n)
            for stage in stages.reversed() {
                apply(stage, from: UnsafePointer(d), to: d, channels: c, transposed: true)
            }
        }
    }

    /// Tensor convenience: `x`, `y` are `[B, h·w, C]` (or any shape with `B·h·w·C` elements
    /// and the batch outermost).
    public func forward(_ x: Tensor, into y: Tensor, channels c: Int) {
        let n = h * w * c
        precondition(x.count == y.count && x.count % n == 0, "SpectralTransform: \(x.shape) vs grid \(h)×\(w)×\(c)")
        forward(src: x.data, srcStride: n, dst: y.data, dstStride: n, batch: x.count / n, channels: c)
    }

    /// Tensor convenience for `inverse`; shapes as `forward(_:into:channels:)`.
    public func inverse(_ x: Tensor, into y: Tensor, channels c: Int) {
        let n = h * w * c
        precondition(x.count == y.count && x.count % n == 0, "SpectralTransform: \(x.shape) vs grid \(h)×\(w)×\(c)")
        inverse(src: x.data, srcStride: n, dst: y.data, dstStride: n, batch: x.count / n, channels: c)
    }

    private func ensureScratch(_ n: Int) {
        if scratch.count < n { scratch = Tensor(zeros: [n]) }
    }

    /// One stage on the top-left `hs×ws` block; `from` may equal `to` (the block goes
    /// through the scratch buffer). Rows of the block are `w·C` floats apart.
    private func apply(_ st: TransformStage, from: UnsafePointer<Float>, to: UnsafeMutablePointer<Float>,
                       channels c: Int, transposed: Bool) {
        let tmp = scratch.data
        let rowStride = w * c
        // tmp[u, j, :] = Σ_i A_h[u, i] · from[i, j, :]   — [hs, hs] · [hs, ws·C]
        st.ah.withUnsafeBufferPointer { ah in
            BLAS.gemm(transposeA: transposed, transposeB: false, m: st.hs, n: st.ws * c, k: st.hs,
                      a: ah.baseAddress!, lda: st.hs, b: from, ldb: rowStride,
                      c: tmp, ldc: st.ws * c)
        }
        // to[u, v, :] = Σ_j A_w[v, j] · tmp[u, j, :]    — [ws, ws] · [ws, C], per row u
        // (small products: the rows are spread over the workers, each product whole)
        st.aw.withUnsafeBufferPointer { awp in
            let aw = awp.baseAddress!
            Parallel.forEach(st.hs) { rows in
                for u in rows {
                    BLAS.gemm(transposeA: transposed, transposeB: false, m: st.ws, n: c, k: st.ws,
                              a: aw, lda: st.ws, b: tmp + u * st.ws * c, ldb: c,
                              c: to + u * rowStride, ldc: c)
                }
            }
        }
    }

    /// In place: `H[u,v] = ½(E[u,v] + E[u',v] + E[u,v'] − E[u',v'])` with `u' = −u mod h`,
    /// `v' = −v mod w`. On the orbits where `u = u'` or `v = v'` this is the identity, so
    /// only the four-point orbits with `0 < u < h−u`, `0 < v < w−v` are touched.
    private func hartleyFixUp(_ d: UnsafeMutablePointer<Float>, channels c: Int) {
        let (h, w) = (self.h, self.w)
        let uMax = (h + 1) / 2, vMax = (w + 1) / 2
        if uMax <= 1 || vMax <= 1 { return }
        let pairs = (uMax - 1) * (vMax - 1)
        Parallel.forEach(pairs, grain: Swift.max(1, 4096 / Swift.max(c, 1))) { range in
            for p in range {
                let u = 1 + p / (vMax - 1), v = 1 + p % (vMax - 1)
                let u2 = h - u, v2 = w - v
                let a = d + (u * w + v) * c, b = d + (u2 * w + v) * c
                let cc = d + (u * w + v2) * c, dd = d + (u2 * w + v2) * c
                for k in 0..<c {
                    let ea = a[k], eb = b[k], ec = cc[k], ed = dd[k]
                    a[k] = 0.5 * (ea + eb + ec - ed)
                    b[k] = 0.5 * (eb + ea + ed - ec)
                    cc[k] = 0.5 * (ec + ed + ea - eb)
                    dd[k] = 0.5 * (ed + ec + eb - ea)
                }
            }
        }
    }
}
