import Foundation
import Numerics
import Layers

/// The linear decode head (reference §Heads), for debugging and linear probing. For the `J` blocks
/// in `outIndices`, with patch tokens `X_j [B·N, C]` (`N = h·w`):
///
///     Y_j = LN_j(X_j)                                   LayerNorm, eps 1e-6, trainable
///     P   = [Y_0 | … | Y_{J−1}] Wᵀ + b                  W [K, J·C], b [K];  P [B·N, K]
///     S   = bilinear↑(P as [B, K, h, w]) → [B, K, H, W]  align_corners = False
///     L   = pixel cross-entropy(S, labels), ignore 255   (sum / global valid pixels)
///
/// The concatenation is never materialised: `P = b + Σ_j Y_j W_jᵀ` with `W_j` the
/// column block `W[:, jC:(j+1)C]` (a GEMM with leading dimension `J·C`). Backward:
///
///     dS = (softmax(S) − onehot) / n          (valid pixels only)
///     dP = bilinear↑ᵀ(dS), transposed to [B·N, K]
///     db += Σ_rows dP;  dW_j += dPᵀ Y_j;  dY_j = dP W_j;  dX_j += LN_jᵀ(dY_j)
///
/// Parameters: `head/norm<j>/weight|bias` [C] (γ = 1, β = 0), `head/linear/weight`
/// [K, J·C] ~ N(0, 0.01²) and `head/linear/bias` [K] = 0 (mmseg's `conv_seg` init).
public final class LinearHead: DecodeHead, Module {
    public let type = "linear"
    public let outIndices: [Int]
    public let numClasses: Int      // K
    public let channels: Int        // C
    public let norms: [LayerNorm]
    public let linear: Linear       // [K, J·C]

    // Caches of the last forward (reused while shapes stay the same).
    private var normed: [Tensor] = []            // Y_j [B·N, C]
    private var inputs: [Tensor] = []            // X_j (views of the caller's features)
    private var patchLogits = Tensor(zeros: [0]) // P [B·N, K]
    private var gridLogits = Tensor(zeros: [0])  // [B, K, h, w]
    private var logits = Tensor(zeros: [0])      // S [B, K, H, W]
    private var dLogits = Tensor(zeros: [0])
    /// dY_j [B·N, C], reused by every j and every step: a fresh 4 MB tensor each backward
    /// (ViT-L 512²) cost up to ≈ 6 ms of page faults and zeroing between two regions.
    private var dNormed = Tensor(zeros: [0])
    private var cachedGrid = (h: 0, w: 0)
    private var cachedBatch = 0

    public init(channels: Int, numClasses: Int, outIndices: [Int], rng: inout RandomGenerator) {
        precondition(!outIndices.isEmpty, "LinearHead: no out_indices")
        self.channels = channels
        self.numClasses = numClasses
        self.outIndices = outIndices
        norms = outIndices.map { _ in LayerNorm(channels: channels, eps: 1e-6) }
        linear = Linear(inputDimensions: outIndices.count * channels, outputDimensions: numClasses)
        rng.fillNormal(linear.weight.value, mean: 0, std: 0.01)
        linear.bias?.value.zero()
        setRequiresGrad(true)
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        var list: [NamedParameter] = []
        for (j, n) in norms.enumerated() { list += n.parameters(prefix: prefix + "norm\(j)/") }
        list += linear.parameters(prefix: prefix + "linear/")
        return list
    }

    public var parameters: [NamedParameter] { parameters(prefix: "head/") }

    public func zeroGradients() { zeroGrad() }

    public func lossNormalizer(labels: LabelBatch) -> Int {
        var n = 0
        let k = numClasses
        for l in labels.values where l != 255 && Int(l) < k { n += 1 }
        return n
    }

    /// Patch logits on the grid, `[B, K, h, w]` (shared by training and inference).
    private func forwardGrid(features: [Tensor], grid: (h: Int, w: Int)) -> Tensor {
        precondition(features.count == outIndices.count, "LinearHead: \(features.count) feature maps for \(outIndices.count) out_indices")
        let n = grid.h * grid.w
        let c = channels, k = numClasses, jc = outIndices.count * channels
        let rows = features[0].count / c
        precondition(rows % n == 0, "LinearHead: features \(features[0].shape) do not fit the grid \(grid)")
        let b = rows / n
        if cachedBatch != b || cachedGrid != grid || normed.count != features.count {
            normed = features.map { _ in Tensor(zeros: [rows, c]) }
            patchLogits = Tensor(zeros: [rows, k])
            gridLogits = Tensor(zeros: [b, k, grid.h, grid.w])
            cachedBatch = b
            cachedGrid = grid
        }
        inputs = features.map { $0.reshaped([rows, c]) }
        // P = b + Σ_j Y_j W_jᵀ
        let bias = linear.bias!.value.data, p = patchLogits.data
        for r in 0..<rows { (p + r * k).update(from: bias, count: k) }
        for j in 0..<features.count {
            norms[j].forward(inputs[j], into: normed[j])
            BLAS.gemm(transposeA: false, transposeB: true, m: rows, n: k, k: c,
                      a: normed[j].data, lda: c, b: linear.weight.value.data + j * c, ldb: jc,
                      beta: 1, c: p, ldc: k)
        }
        // [B, N, K] → [B, K, N]
        let g = gridLogits.data
        Parallel.forEach(b * k) { range in
            for bk in range {
                let bi = bk / k, ki = bk % k
                let src = p + bi * n * k + ki, dst = g + bk * n
                for i in 0..<n { dst[i] = src[i * k] }
            }
        }
        return gridLogits
    }

    public func forwardLoss(features: [Tensor], grid: (h: Int, w: Int), labels: LabelBatch, normalizer: Int) -> LossTerms {
        let g = forwardGrid(features: features, grid: grid)
        let shape = [cachedBatch, numClasses, labels.height, labels.width]
        precondition(labels.batch == cachedBatch, "LinearHead: \(labels.batch) label maps for a batch of \(cachedBatch)")
        if logits.shape != shape { logits = Tensor(zeros: shape); dLogits = Tensor(zeros: shape) }
        Resample.bilinear(g, into: logits)
        Kernels.zero(dLogits)
        let r = PixelCrossEntropy.forwardBackward(logits: logits, labels: labels.values, dLogits: dLogits,
                                                  normalizer: normalizer)
        return LossTerms(sum: r.lossSum, normalizer: normalizer)
    }

    public func backwardLoss(dFeatures: [Tensor]) {
        let n = cachedGrid.h * cachedGrid.w
        let c = channels, k = numClasses, jc = outIndices.count * channels
        let rows = cachedBatch * n
        // dP on the grid, [B, K, h, w] → [B·N, K]
        let dGrid = Tensor(zeros: gridLogits.shape)
        Resample.bilinearBackward(dOutput: dLogits, dInput: dGrid)
        let dP = Tensor(zeros: [rows, k])
        let src = dGrid.data, dst = dP.data
        Parallel.forEach(cachedBatch * k) { range in
            for bk in range {
                let bi = bk / k, ki = bk % k
                let s = src + bk * n, d = dst + bi * n * k + ki
                for i in 0..<n { d[i * k] = s[i] }
            }
        }
        if let db = linear.bias?.grad { Kernels.accumulateColumnSums(dP.data, rows: rows, cols: k, into: db.data) }
        let dW = linear.weight.grad!
        if dNormed.count != rows * c { dNormed = Tensor(zeros: [rows, c]) }
        let dY = dNormed   // each product below overwrites it (beta = 0)
        for j in 0..<outIndices.count {
            // dW_j += dPᵀ Y_j
            BLAS.gemm(transposeA: true, transposeB: false, m: k, n: c, k: rows,
                      a: dP.data, lda: k, b: normed[j].data, ldb: c, beta: 1, c: dW.data + j * c, ldc: jc)
            // dY_j = dP W_j
            BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: c, k: k,
                      a: dP.data, lda: k, b: linear.weight.value.data + j * c, ldb: jc, beta: 0, c: dY.data, ldc: c)
            norms[j].backward(dOutput: dY, input: inputs[j], dInput: dFeatures[j].reshaped([rows, c]))
        }
    }

    public func predict(features: [Tensor], grid: (h: Int, w: Int), size: (h: Int, w: Int)) -> Tensor {
        let g = forwardGrid(features: features, grid: grid)
        let out = Tensor(zeros: [cachedBatch, numClasses, size.h, size.w])
        Resample.bilinear(g, into: out)
        return out
    }
}
