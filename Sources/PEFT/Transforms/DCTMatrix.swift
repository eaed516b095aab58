import Foundation

/// The orthonormal DCT-II matrix (reference §Causal-Tune layer):
///
///     D_n[k, j] = α_k · cos(π (2j + 1) k / (2n)),   α_0 = √(1/n),  α_k = √(2/n) (k > 0)
///
/// `D_n` is orthogonal (`D_n D_nᵀ = I`), so the inverse DCT (DCT-III) is `D_nᵀ`.
/// Computed in double precision, stored `[n, n]` row-major Float.
public enum DCTMatrix {
    public static func make(_ n: Int) -> [Float] {
        var d = [Float](repeating: 0, count: n * n)
        for k in 0..<n {
            let alpha = k == 0 ? (1.0 / Double(n)).squareRoot() : (2.0 / Double(n)).squareRoot()
            for j in 0..<n {
                d[k * n + j] = Float(alpha * cos(Double.pi * Double(2 * j + 1) * Double(k) / Double(2 * n)))
            }
        }
        return d
    }
}
