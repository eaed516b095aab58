import Numerics

/// A 2-D convolution, stride 1, zero padding `(k − 1) / 2` ("same" size), PyTorch layout
/// (`torch.nn.Conv2d(C, OC, k, padding=(k−1)//2)`), on `[B, C, H, W]` maps:
///
///     y[b, o, i, j] = b_o + Σ_{c, u, v} W[o, c, u, v] · x[b, c, i + u − p, j + v − p]
///
/// computed as a GEMM per image on an im2col matrix `X_col [C·k·k, rows·W]` built for a band
/// of output rows at a time (bounded scratch): `Y = W_mat [OC, C·k·k] · X_col`. A 1×1 kernel
/// multiplies the map directly. Backward per image and band:
///
///     dW_mat += dY · X_colᵀ,   db += Σ_{i,j} dY,   dX_col = W_matᵀ · dY  (scattered back: col2im)
///
/// Initialisation (`reset`): PyTorch's default, U(−1/√(C·k·k), 1/√(C·k·k)) for W and b.
public final class Conv2d: Layer {
    public let inputChannels: Int, outputChannels: Int, kernelSize: Int
    public let weight: Parameter   // [OC, C, k, k]
    public let bias: Parameter?    // [OC]
    private var scratch = CacheBuffer(), dScratch = CacheBuffer()

    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int, bias: Bool = true) {
        precondition(kernelSize % 2 == 1, "Conv2d: odd kernel sizes only (\(kernelSize))")
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelSize = kernelSize
        weight = Parameter(zeros: [outputChannels, inputChannels, kernelSize, kernelSize])
        self.bias = bias ? Parameter(zeros: [outputChannels]) : nil
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        WeightAndBias.parameters(prefix: prefix, weight: weight, bias: bias)
    }

    public func reset(rng: inout RandomGenerator) {
        WeightAndBias.reset(weight: weight, bias: bias, fanIn: inputChannels * kernelSize * kernelSize, rng: &rng)
    }

    private func dims(_ input: Tensor) -> (B: Int, H: Int, W: Int) {
        precondition(input.rank == 4 && input.shape[1] == inputChannels, "Conv2d: input \(input.shape), C = \(inputChannels)")
        return (input.shape[0], input.shape[2], input.shape[3])
    }

    /// Output rows per im2col band (scratch ≤ ~4 M floats).
    private func bandRows(_ H: Int, _ W: Int) -> Int {
        Swift.max(1, Swift.min(H, (1 << 22) / Swift.max(1, inputChannels * kernelSize * kernelSize * W)))
    }

    /// X_col [C·k·k, rows·W] for output rows r0 ..< r0 + rows of one image x [C, H, W].
    private func im2col(_ x: UnsafePointer<Float>, H: Int, W: Int, r0: Int, rows: Int, into col: UnsafeMutablePointer<Float>) {
        let k = kernelSize, p = (k - 1) / 2, n = rows * W
        Parallel.forEach(inputChannels * k * k, grain: Swift.max(1, 4096 / Swift.max(n, 1))) { range in
            for ckk in range {
                let c = ckk / (k * k), u = (ckk / k) % k, v = ckk % k
                let dst = col + ckk * n
                for i in 0..<rows {
                    let y = r0 + i + u - p
                    let d = dst + i * W
                    if y < 0 || y >= H { d.update(repeating: 0, count: W); continue }
                    let src = x + (c * H + y) * W
                    for j in 0..<W {
                        let xx = j + v - p
                        d[j] = xx >= 0 && xx < W ? src[xx] : 0
                    }
                }
            }
        }
    }

    /// The adjoint of `im2col`: dx [C, H, W] += scatter of dX_col.
    private func col2im(_ col: UnsafePointer<Float>, H: Int, W: Int, r0: Int, rows: Int, into dx: UnsafeMutablePointer<Float>) {
        let k = kernelSize, p = (k - 1) / 2, n = rows * W
        // Channels are independent: parallel over c, serial over the k·k taps of that channel.
        Parallel.forEach(inputChannels) { range in
            for c in range {
                for uv in 0..<(k * k) {
                    let u = uv / k, v = uv % k
                    let src = col + (c * k * k + uv) * n
                    for i in 0..<rows {
                        let y = r0 + i + u - p
                        if y < 0 || y >= H { continue }
                        let d = dx + (c * H + y) * W, s = src + i * W
                        for j in 0..<W {
                            let xx = j + v - p
                            if xx >= 0 && xx < W { d[xx] += s[j] }
                        }
                    }
                }
            }
        }
    }

    /// input [B, C, H, W] → output [B, OC, H, W] (written).
    public func forward(_ input: Tensor, into output: Tensor) {
        let (B, H, W) = dims(input)
        let (C, OC, k) = (inputChannels, outputChannels, kernelSize)
        precondition(output.shape == [B, OC, H, W], "Conv2d: output \(output.shape) for input \(input.shape)")
        let ckk = C * k * k, HW = H * W
        let band = bandRows(H, W)
        let col = k == 1 ? Tensor.empty : scratch.ensure([ckk * band * W])
        for b in 0..<B {
            let x = input.data + b * C * HW, y = output.data + b * OC * HW
            if let bias {
                for o in 0..<OC { (y + o * HW).update(repeating: bias.value.data[o], count: HW) }
            }
            if k == 1 {
                BLAS.gemm(transposeA: false, transposeB: false, m: OC, n: HW, k: C, a: weight.value.data, lda: C,
                          b: x, ldb: HW, beta: bias == nil ? 0 : 1, c: y, ldc: HW)
                continue
            }
            var r0 = 0
            while r0 < H {
                let rows = Swift.min(band, H - r0)
                im2col(x, H: H, W: W, r0: r0, rows: rows, into: col.data)
                BLAS.gemm(transposeA: false, transposeB: false, m: OC, n: rows * W, k: ckk, a: weight.value.data, lda: ckk,
                          b: col.data, ldb: rows * W, beta: bias == nil ? 0 : 1, c: y + r0 * W, ldc: HW)
                r0 += rows
            }
        }
    }

    /// [B, C, H, W] → [B, OC, H, W].
    public func outputShape(for inputShape: [Int]) -> [Int] {
        [inputShape[0], outputChannels, inputShape[2], inputShape[3]]
    }

    /// Accumulates dx (when given) and dW, db for the parameters that require a gradient.
    /// dOutput [B, OC, H, W], input [B, C, H, W] (the forward's input).
    public func backward(dOutput: Tensor, input: Tensor, dInput: Tensor?) {
        backward(dOutput: dOutput, input: input, dInput: dInput, parameterGradients: true)
    }

    /// Frozen backward: accumulates only dx.
    public func backwardInput(dOutput: Tensor, input: Tensor, dInput: Tensor) {
        backward(dOutput: dOutput, input: input, dInput: dInput, parameterGradients: false)
    }

    private func backward(dOutput: Tensor, input: Tensor, dInput: Tensor?, parameterGradients: Bool) {
        let (B, H, W) = dims(input)
        let (C, OC, k) = (inputChannels, outputChannels, kernelSize)
        precondition(dOutput.shape == [B, OC, H, W], "Conv2d: dOutput \(dOutput.shape) for input \(input.shape)")
        if let d = dInput { precondition(d.count == input.count, "Conv2d: dInput \(d.shape)") }
        let ckk = C * k * k, HW = H * W
        let band = bandRows(H, W)
        let dW = parameterGradients ? weight.grad : nil
        let dBias = parameterGradients ? bias?.grad : nil
        let needCol = k > 1 && (dW != nil || dInput != nil)
        let col = needCol ? scratch.ensure([ckk * band * W]) : Tensor.empty
        let dCol = needCol && dInput != nil ? dScratch.ensure([ckk * band * W]) : Tensor.empty
        for b in 0..<B {
            let x = input.data + b * C * HW, g = dOutput.data + b * OC * HW
            if let db = dBias {
                for o in 0..<OC { db.data[o] += Float(Kernels.sum(g + o * HW, count: HW)) }
            }
            if k == 1 {
                if let dW {
                    BLAS.gemm(transposeA: false, transposeB: true, m: OC, n: C, k: HW, a: g, lda: HW, b: x, ldb: HW,
                              beta: 1, c: dW.data, ldc: C)
                }
                if let dx = dInput {
                    BLAS.gemm(transposeA: true, transposeB: false, m: C, n: HW, k: OC, a: weight.value.data, lda: C,
                              b: g, ldb: HW, beta: 1, c: dx.data + b * C * HW, ldc: HW)
                }
                continue
            }
            var r0 = 0
            while r0 < H {
                let rows = Swift.min(band, H - r0), n = rows * W
                if let dW {
                    im2col(x, H: H, W: W, r0: r0, rows: rows, into: col.data)
                    BLAS.gemm(transposeA: false, transposeB: true, m: OC, n: ckk, k: n, a: g + r0 * W, lda: HW,
                              b: col.data, ldb: n, beta: 1, c: dW.data, ldc: ckk)
                }
                if let dx = dInput {
                    BLAS.gemm(transposeA: true, transposeB: false, m: ckk, n: n, k: OC, a: weight.value.data, lda: ckk,
                              b: g + r0 * W, ldb: HW, beta: 0, c: dCol.data, ldc: n)
                    col2im(dCol.data, H: H, W: W, r0: r0, rows: rows, into: dx.data + b * C * HW)
                }
                r0 += rows
            }
        }
    }
}
