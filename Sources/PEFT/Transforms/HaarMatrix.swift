import Foundation

/// One level of the orthonormal 1-D Haar wavelet on an even length `n`, Mallat layout
/// (approximations first, then details):
///
///     W[k, 2k] = W[k, 2k+1] = 1/√2                  (k < n/2, approximation)
///     W[n/2 + k, 2k] = 1/√2, W[n/2 + k, 2k+1] = −1/√2  (detail)
///
/// `W` is orthogonal, so the inverse level is `Wᵀ`. The 2-D transform applies one level
/// along both sides of the current approximation block (the top-left quarter after each
/// level) as long as both of its sides are even.
public enum HaarMatrix {
    public static func level(_ n: Int) -> [Float] {
        precondition(n % 2 == 0 && n >= 2, "Haar level needs an even length, got \(n)")
        let r = Float((0.5).squareRoot())
        var m = [Float](repeating: 0, count: n * n)
        let half = n / 2
        for k in 0..<half {
            m[k * n + 2 * k] = r
            m[k * n + 2 * k + 1] = r
            m[(half + k) * n + 2 * k] = r
            m[(half + k) * n + 2 * k + 1] = -r
        }
        return m
    }
}
