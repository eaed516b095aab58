import Foundation
import Numerics

/// EVA02's 2-D rotary position embedding (timm `RotaryEmbeddingCat` with
/// `ref_feat_shape = (16, 16)`, EVA-02's `VisionRotaryEmbeddingFast`), applied to the query
/// and key of every head for the patch tokens only (not the prefix tokens, not v).
///
/// For a head of D dimensions and the patch at row r, column c of an h × w grid:
///
///     F = D/4 frequencies  ω_k = 10000^(−4k/D),  k = 0 ..< F
///     coordinates          t_r = r · 16 / h,  t_c = c · 16 / w    (16: the pretraining grid)
///     angle of pair j      θ_j = t_r · ω_j        for j < F      (dimensions 2j, 2j+1)
///                          θ_j = t_c · ω_{j−F}    for F ≤ j < 2F
///     rotate each interleaved pair (x[2j], x[2j+1]) by θ_j:
///       x'[2j]   = x[2j] cos θ_j − x[2j+1] sin θ_j
///       x'[2j+1] = x[2j+1] cos θ_j + x[2j] sin θ_j
///
/// The rotation is orthogonal, so the backward applies its transpose (rotation by −θ).
/// Angles are computed in double precision once per grid.
public final class RotaryPositionEmbedding {
    public let headDim: Int
    public let grid: (h: Int, w: Int)
    /// Tokens in front of the patches (left unrotated).
    public let prefixTokens: Int
    /// The pretraining grid side the coordinates are scaled to.
    public static let referenceGrid = 16
    /// cos θ_j and sin θ_j per patch and pair, [h·w, D/2] each.
    private let cosines: [Float]
    private let sines: [Float]

    public init(headDim: Int, grid: (h: Int, w: Int), prefixTokens: Int) {
        precondition(headDim % 4 == 0 && headDim > 0, "RotaryPositionEmbedding: head dim \(headDim) is not a multiple of 4")
        self.headDim = headDim
        self.grid = grid
        self.prefixTokens = prefixTokens
        let f = headDim / 4, pairs = headDim / 2, n = grid.h * grid.w
        let omega = (0..<f).map { Foundation.pow(10000.0, -Double(4 * $0) / Double(headDim)) }
        let reference = Double(RotaryPositionEmbedding.referenceGrid)
        var cosines = [Float](repeating: 0, count: n * pairs), sines = cosines
        for r in 0..<grid.h {
            for c in 0..<grid.w {
                let tr = Double(r) * reference / Double(grid.h), tc = Double(c) * reference / Double(grid.w)
                let base = (r * grid.w + c) * pairs
                for j in 0..<pairs {
                    let angle = j < f ? tr * omega[j] : tc * omega[j - f]
                    cosines[base + j] = Float(Foundation.cos(angle))
                    sines[base + j] = Float(Foundation.sin(angle))
                }
            }
        }
        self.cosines = cosines
        self.sines = sines
    }

    /// Rotates q and k of every head in place: `qkv` [B, T, 3C] with q, k, v side by side
    /// (T = prefix + h·w tokens). `inverse` applies the transpose (the backward).
    public func rotate(_ qkv: Tensor, channels C: Int, inverse: Bool = false) {
        let B = qkv.shape[0], T = qkv.shape[1], n = grid.h * grid.w, pairs = headDim / 2, heads = C / headDim
        precondition(qkv.rank == 3 && qkv.shape[2] == 3 * C && T == prefixTokens + n,
                     "RotaryPositionEmbedding: qkv \(qkv.shape) for C = \(C), \(prefixTokens) + \(n) tokens")
        let sign: Float = inverse ? -1 : 1
        let p = qkv.data
        cosines.withUnsafeBufferPointer { cosBuffer in
            sines.withUnsafeBufferPointer { sinBuffer in
                let cs = cosBuffer.baseAddress!, sn = sinBuffer.baseAddress!
                Parallel.forEach(B * n, grain: Swift.max(1, Kernels.elementGrain / Swift.max(4 * C, 1))) { range in
                    for bn in range {
                        let b = bn / n, i = bn % n
                        let row = p + (b * T + prefixTokens + i) * 3 * C
                        let cr = cs + i * pairs, sr = sn + i * pairs
                        // q (offset 0) and k (offset C), every head.
                        for part in 0..<2 {
                            for h in 0..<heads {
                                let x = row + part * C + h * headDim
                                for j in 0..<pairs {
                                    let c = cr[j], s = sign * sr[j]
                                    let a = x[2 * j], bb = x[2 * j + 1]
                                    x[2 * j] = a * c - bb * s
                                    x[2 * j + 1] = bb * c + a * s
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
