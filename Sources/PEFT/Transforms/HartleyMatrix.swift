import Foundation

/// The orthonormal 1-D discrete Hartley matrix:
///
///     C_n[k, j] = cas(2π k j / n) / √n,   cas θ = cos θ + sin θ
///
/// symmetric and self-inverse (`C_n C_n = I`). The 2-D Hartley transform is *not* the
/// separable product `C_h X C_wᵀ`; `SpectralTransform` applies the separable product and
/// then the four-point fix-up that makes it the true 2-D transform with kernel
/// `cas(2π(u i/h + v j/w)) / √(h w)` — the real form `Re − Im` of the orthonormal 2-D DFT.
public enum HartleyMatrix {
    public static func make(_ n: Int) -> [Float] {
        var c = [Float](repeating: 0, count: n * n)
        let scale = 1 / Double(n).squareRoot()
        for k in 0..<n {
            for j in 0..<n {
                // Reduce k·j mod n first so the angle stays exact for large n.
                let theta = 2 * Double.pi * Double((k * j) % n) / Double(n)
                c[k * n + j] = Float(scale * (cos(theta) + sin(theta)))
            }
        }
        return c
    }
}
