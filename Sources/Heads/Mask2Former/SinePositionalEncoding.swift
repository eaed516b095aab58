import Foundation
import Numerics

/// mmdet's `SinePositionalEncoding(num_feats=F, normalize=True)` (DETR) for an unpadded
/// `H × W` map, as tokens `[H·W, 2F]` (row-major pixels; the same for every image):
///
///     ŷ = (i + 1) / (H + 1e−6) · 2π,   x̂ = (j + 1) / (W + 1e−6) · 2π
///     τ_k = 10000^(2⌊k/2⌋ / F),  k = 0 … F−1
///     pos[i·W + j, k]     = sin(ŷ / τ_k) for even k, cos(ŷ / τ_k) for odd k      (first F: y)
///     pos[i·W + j, F + k] = sin(x̂ / τ_k) for even k, cos(x̂ / τ_k) for odd k      (next F: x)
public enum SinePositionalEncoding {
    public static func tokens(height H: Int, width W: Int, features F: Int = 128) -> Tensor {
        let out = Tensor(zeros: [H * W, 2 * F])
        let twoPi = 2 * Float.pi, eps: Float = 1e-6
        var dimT = [Float](repeating: 0, count: F)
        for k in 0..<F { dimT[k] = powf(10000, Float(2 * (k / 2)) / Float(F)) }
        let o = out.data
        for i in 0..<H {
            let y = Float(i + 1) / (Float(H) + eps) * twoPi
            for j in 0..<W {
                let x = Float(j + 1) / (Float(W) + eps) * twoPi
                let row = o + (i * W + j) * 2 * F
                for k in 0..<F {
                    row[k] = k % 2 == 0 ? sinf(y / dimT[k]) : cosf(y / dimT[k])
                    row[F + k] = k % 2 == 0 ? sinf(x / dimT[k]) : cosf(x / dimT[k])
                }
            }
        }
        return out
    }
}

/// The encodings of the map sizes a layer has met, each computed once: the head asks for the
/// same few sizes every step, and they are constants (read only, never written).
struct SineEncodings {
    private var cached: [(height: Int, width: Int, features: Int, tokens: Tensor)] = []
    /// More sizes than a training run meets (three levels, a train and an evaluation size).
    private let capacity = 8

    mutating func tokens(height: Int, width: Int, features: Int) -> Tensor {
        if let hit = cached.first(where: { $0.height == height && $0.width == width && $0.features == features }) {
            return hit.tokens
        }
        let t = SinePositionalEncoding.tokens(height: height, width: width, features: features)
        if cached.count == capacity { cached.removeFirst() }
        cached.append((height, width, features, t))
        return t
    }
}
