import Numerics

/// Patch embedding: `Conv2d(3, C, kernel = stride = P)` as one GEMM over unfolded patches
/// (DINOv2 `PatchEmbed`, keys `proj.weight` [C, 3, P, P], `proj.bias` [C]; CLIP's has no bias):
///
///     cols[b·h·w + i·w + j, c·P·P + ky·P + kx] = img[b, c, i·P + ky, j·P + kx]
///     out = cols Wᵀ + bias          img [B, 3, H, W] → out [B, h·w, C], h = ⌊H/P⌋, w = ⌊W/P⌋
///
/// (patches row-major, exactly the token order of `proj(x).flatten(2).transpose(1, 2)`;
/// as in `Conv2d`, a border narrower than P is dropped). Backward:
///
///     dW += doutᵀ cols,   db += Σ dout,   dimg += fold(dout W)
///
/// The forward caches `cols` [B·h·w, 3·P·P]; backward uses a scratch of the same size.
public final class PatchEmbed: Module {
    public let patchSize: Int       // P
    public let inChannels: Int      // 3
    public let embedDim: Int        // C
    public let weight: Parameter    // [C, 3, P, P]
    public let bias: Parameter?     // [C]
    private var cols = CacheBuffer(), dCols = CacheBuffer()
    private var imageShape: [Int] = []

    public init(patchSize: Int, inChannels: Int = 3, embedDim: Int, bias hasBias: Bool = true) {
        self.patchSize = patchSize
        self.inChannels = inChannels
        self.embedDim = embedDim
        weight = Parameter(zeros: [embedDim, inChannels, patchSize, patchSize])
        bias = hasBias ? Parameter(zeros: [embedDim]) : nil
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        [NamedParameter(name: prefix + "proj.weight", parameter: weight)]
            + (bias.map { [NamedParameter(name: prefix + "proj.bias", parameter: $0)] } ?? [])
    }

    /// PyTorch's Conv2d default: W, b ~ U(−1/√fanIn, 1/√fanIn), fanIn = 3·P·P.
    public func reset(rng: inout RandomGenerator) {
        let bound = 1 / Float(inChannels * patchSize * patchSize).squareRoot()
        rng.fillUniform(weight.value, -bound, bound)
        if let bias { rng.fillUniform(bias.value, -bound, bound) }
    }

    /// The token grid (h, w) for an `height × width` image.
    public func grid(height: Int, width: Int) -> (h: Int, w: Int) { (height / patchSize, width / patchSize) }

    /// image [B, 3, H, W] → output [B, h·w, C] (written).
    public func forward(_ image: Tensor, into output: Tensor) {
        precondition(image.rank == 4 && image.shape[1] == inChannels, "PatchEmbed: image \(image.shape)")
        let (B, H, W) = (image.shape[0], image.shape[2], image.shape[3])
        let (h, w) = grid(height: H, width: W)
        let rows = B * h * w, K = inChannels * patchSize * patchSize
        precondition(output.count == rows * embedDim, "PatchEmbed: output \(output.shape) for image \(image.shape)")
        imageShape = image.shape
        let c = cols.ensure([rows, K])
        unfold(image, into: c)
        let out = output.data, C = embedDim
        if let bp = bias?.value.data {
            Parallel.forEach(rows, grain: Swift.max(1, Kernels.elementGrain / C)) { r in
                for i in r { (out + i * C).update(from: bp, count: C) }
            }
        }
        BLAS.gemm(transposeA: false, transposeB: true, m: rows, n: C, k: K,
                  a: c.data, lda: K, b: weight.value.data, ldb: K, beta: bias == nil ? 0 : 1, c: out, ldc: C)
    }

    public func callAsFunction(_ image: Tensor) -> Tensor {
        let (h, w) = grid(height: image.shape[2], width: image.shape[3])
        let out = Tensor(zeros: [image.shape[0], h * w, embedDim])
        forward(image, into: out)
        return out
    }

    /// Full backward (after `forward`): accumulates dW, db (when they require gradients) and
    /// the image gradient (when `dImage` is given).
    public func backward(dOutput: Tensor, dImage: Tensor?) {
        let (rows, K) = checkCache(dOutput)
        if let dW = weight.grad {
            BLAS.gemm(transposeA: true, transposeB: false, m: embedDim, n: K, k: rows,
                      a: dOutput.data, lda: embedDim, b: cols.tensor.data, ldb: K, beta: 1, c: dW.data, ldc: K)
        }
        if let db = bias?.grad { Kernels.accumulateColumnSums(dOutput.data, rows: rows, cols: embedDim, into: db.data) }
        if let dx = dImage { backwardInput(dOutput: dOutput, dImage: dx) }
    }

    /// Frozen backward: accumulates only the image gradient.
    public func backwardInput(dOutput: Tensor, dImage: Tensor) {
        let (rows, K) = checkCache(dOutput)
        precondition(dImage.shape == imageShape, "PatchEmbed: dImage \(dImage.shape) for image \(imageShape)")
        let dc = dCols.ensure([rows, K])
        BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: K, k: embedDim,
                  a: dOutput.data, lda: embedDim, b: weight.value.data, ldb: K, c: dc.data, ldc: K)
        fold(dc, into: dImage)
    }

    public func releaseCache() { cols.release(); dCols.release() }

    private func checkCache(_ dOutput: Tensor) -> (Int, Int) {
        let rows = cols.tensor.shape.first ?? 0, K = inChannels * patchSize * patchSize
        precondition(!imageShape.isEmpty && cols.tensor.shape == [rows, K] && dOutput.count == rows * embedDim,
                     "PatchEmbed: backward without a matching forward (dOutput \(dOutput.shape))")
        return (rows, K)
    }

    /// Copies each P×P×3 patch into one row of `cols` (and, with `add`, the reverse).
    private func unfold(_ image: Tensor, into c: Tensor) { move(image: image, cols: c, toCols: true) }
    private func fold(_ c: Tensor, into image: Tensor) { move(image: image, cols: c, toCols: false) }

    private func move(image: Tensor, cols c: Tensor, toCols: Bool) {
        let (B, Cin, H, W) = (imageShape[0], imageShape[1], imageShape[2], imageShape[3])
        let P = patchSize
        let (h, w) = grid(height: H, width: W)
        let K = Cin * P * P
        let img = image.data, cp = c.data
        Parallel.forEach(B * h, grain: 1) { r in
            for bi in r {
                let b = bi / h, i = bi % h
                for j in 0..<w {
                    let row = cp + ((b * h + i) * w + j) * K
                    for ch in 0..<Cin {
                        for ky in 0..<P {
                            let src = img + ((b * Cin + ch) * H + i * P + ky) * W + j * P
                            let dst = row + (ch * P + ky) * P
                            if toCols {
                                dst.update(from: src, count: P)
                            } else {
                                for kx in 0..<P { src[kx] += dst[kx] }
                            }
                        }
                    }
                }
            }
        }
    }
}
