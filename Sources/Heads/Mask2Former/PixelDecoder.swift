import Numerics
import Layers

/// mmcv's `ConvModule(conv, GroupNorm, [ReLU])`: `y = act(GN(conv(x)))`. The conv has a bias
/// only when asked (mmdet's input convs; the lateral and output convs have none). Names
/// `conv.weight`, `conv.bias`, `gn.weight`, `gn.bias`.
public final class ConvNorm: Module {
    public let conv: Conv2d, norm: GroupNorm
    public let relu: Bool
    private var convOut = Tensor(zeros: [0]), out = Tensor(zeros: [0])
    private let scratch: ScratchArena

    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int, groups: Int = 32, relu: Bool, bias: Bool = false,
                scratch: ScratchArena = ScratchArena()) {
        self.scratch = scratch
        conv = Conv2d(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: kernelSize, bias: bias)
        norm = GroupNorm(groups: groups, channels: outputChannels)
        self.relu = relu
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        conv.parameters(prefix: prefix + "conv.") + norm.parameters(prefix: prefix + "gn.")
    }

    /// input [B, C, H, W] → [B, OC, H, W] (a cached tensor, valid until the next forward).
    public func forward(_ input: Tensor) -> Tensor {
        let shape = [input.shape[0], conv.outputChannels, input.shape[2], input.shape[3]]
        if convOut.shape != shape { convOut = Tensor(zeros: shape); out = Tensor(zeros: shape) }
        conv.forward(input, into: convOut)
        norm.forward(convOut, into: out)
        if relu { let p = out.data; for i in 0..<out.count where p[i] < 0 { p[i] = 0 } }
        return out
    }

    /// Accumulates parameter gradients and dInput (when given).
    public func backward(dOutput: Tensor, input: Tensor, dInput: Tensor?) {
        var g = dOutput
        if relu {
            g = scratch.copy("cn.g", of: dOutput)
            let o = out.data, gp = g.data
            for i in 0..<g.count where o[i] <= 0 { gp[i] = 0 }
        }
        let dConv = scratch.zeros("cn.dConv", convOut.shape)
        norm.backward(dOutput: g, input: convOut, dInput: dConv)
        conv.backward(dOutput: dConv, input: input, dInput: dInput)
    }
}

/// Mask2Former's pixel decoder (mmdet `MSDeformAttnPixelDecoder`) on four `[B, C_in, h, w]`
/// feature maps at strides 4, 8, 16, 32:
///
///     levels l = 0, 1, 2 ← strides 32, 16, 8:  z_l = GN(conv1×1(f_l) + b)   (input_convs, with bias)
///     tokens x₀ = [z₀; z₁; z₂] flattened row-major, [B, S, C], S = Σ h_l w_l
///     pos = sine(h_l, w_l) + level_encoding[l]     reference (j + ½)/w_l, (i + ½)/h_l on every level
///     memory = Encoder₆(x₀)                         6 deformable encoder layers (`EncoderLayer`)
///     y = GN(conv1×1(f_stride4)) + bilinear↑(memory of stride 8 as a map)   (lateral_convs)
///     mask_feature = conv1×1(ReLU(GN(conv3×3(y))))                          (output_convs, mask_feature)
///
/// Outputs: the mask features `[B, C, H₄, W₄]` and the memory tokens (levels in the order
/// strides 32, 16, 8 — the order the transformer decoder cycles through).
/// Initialisation as mmdet: input convs Xavier-uniform; lateral/output/mask convs
/// caffe2-Xavier (U(±√(3/fan_in))), biases 0; level encoding N(0, 1); encoder Xavier-uniform then
/// the deformable attention's own initialisation. Backward work buffers come from `scratch`
/// (keys `pd.*`, `cn.*`, and the encoder layers'), shared with the rest of the head.
public final class PixelDecoder: Module {
    public let inputChannels: Int, channels: Int
    public let inputConvs: [ConvNorm]
    public let levelEncoding: Parameter   // [3, C]
    public let encoder: [EncoderLayer]
    public let lateralConv: ConvNorm, outputConv: ConvNorm
    public let maskFeature: Conv2d

    public private(set) var shapes: [(h: Int, w: Int)] = []
    private var tokens: [Tensor] = []          // x₀ … x₆
    private var pos = Tensor(zeros: [0]), reference = Tensor(zeros: [0])
    private var features: [Tensor] = []
    private var map8 = CacheBuffer(), y = CacheBuffer(), out4 = CacheBuffer(), maskFeatures = CacheBuffer()
    private var sines = SineEncodings()
    private let scratch: ScratchArena

    public init(inputChannels: Int, channels: Int = 256, encoderLayers: Int = 6, heads: Int = 8, points: Int = 4,
                feedforward: Int = 1024, groups: Int = 32, scratch: ScratchArena = ScratchArena()) {
        self.inputChannels = inputChannels
        self.channels = channels
        self.scratch = scratch
        inputConvs = (0..<3).map { _ in
            ConvNorm(inputChannels: inputChannels, outputChannels: channels, kernelSize: 1, groups: groups, relu: false, bias: true,
                     scratch: scratch)
        }
        levelEncoding = Parameter(zeros: [3, channels])
        encoder = (0..<encoderLayers).map { _ in
            EncoderLayer(channels: channels, heads: heads, levels: 3, points: points, feedforward: feedforward, scratch: scratch)
        }
        lateralConv = ConvNorm(inputChannels: inputChannels, outputChannels: channels, kernelSize: 1, groups: groups, relu: false,
                               scratch: scratch)
        outputConv = ConvNorm(inputChannels: channels, outputChannels: channels, kernelSize: 3, groups: groups, relu: true,
                              scratch: scratch)
        maskFeature = Conv2d(inputChannels: channels, outputChannels: channels, kernelSize: 1)
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        var p: [NamedParameter] = []
        for (i, c) in inputConvs.enumerated() { p += c.parameters(prefix: prefix + "input_convs.\(i).") }
        for (i, l) in encoder.enumerated() { p += l.parameters(prefix: prefix + "encoder.layers.\(i).") }
        p.append(NamedParameter(name: prefix + "level_encoding.weight", parameter: levelEncoding))
        p += lateralConv.parameters(prefix: prefix + "lateral_convs.0.")
        p += outputConv.parameters(prefix: prefix + "output_convs.0.")
        p += maskFeature.parameters(prefix: prefix + "mask_feature.")
        return p
    }

    public func reset(rng: inout RandomGenerator) {
        for c in inputConvs { xavierUniform(c.conv.weight.value, &rng); c.conv.bias?.value.zero() }
        for l in encoder {
            for p in l.namedParameters where p.parameter.value.rank > 1 { xavierUniform(p.parameter.value, &rng) }
            l.attention.reset(rng: &rng)
        }
        for c in [lateralConv.conv, outputConv.conv, maskFeature] {
            let fanIn = c.inputChannels * c.kernelSize * c.kernelSize
            let a = (3 / Float(fanIn)).squareRoot()
            rng.fillUniform(c.weight.value, -a, a)
            c.bias?.value.zero()
        }
        rng.fillNormal(levelEncoding.value)
    }

    /// The memory tokens of the last forward, [B, S, C] (levels strides 32, 16, 8).
    public var memory: Tensor { tokens.last! }

    /// features: [B, C_in, h, w] at strides 4, 8, 16, 32 → mask features [B, C, H₄, W₄] (a cached
    /// tensor, valid until the next forward).
    public func forward(_ features: [Tensor]) -> Tensor {
        precondition(features.count == 4, "PixelDecoder: \(features.count) feature maps, expected 4")
        let C = channels, B = features[0].shape[0]
        self.features = features
        shapes = (0..<3).map { l in (h: features[3 - l].shape[2], w: features[3 - l].shape[3]) }
        let starts = DeformableAttentionCore.levelStarts(shapes)
        let S = shapes.reduce(0) { $0 + $1.h * $1.w }
        if tokens.count != encoder.count + 1 || tokens[0].count != B * S * C {
            tokens = (0...encoder.count).map { _ in Tensor(zeros: [B, S, C]) }
            pos = Tensor(zeros: [S, C])
            reference = Tensor(zeros: [B, S, 3, 2])
            for l in 0..<3 {
                let (h, w) = shapes[l]
                for i in 0..<h { for j in 0..<w {
                    for b in 0..<B { for l2 in 0..<3 {
                        let k = ((b * S + starts[l] + i * w + j) * 3 + l2) * 2
                        reference.data[k] = (Float(j) + 0.5) / Float(w)
                        reference.data[k + 1] = (Float(i) + 0.5) / Float(h)
                    } }
                } }
            }
        }
        for l in 0..<3 {
            let (h, w) = shapes[l], hw = h * w
            let z = inputConvs[l].forward(features[3 - l])
            for b in 0..<B {
                Kernels.transpose(z.data + b * C * hw, rows: C, cols: hw, into: tokens[0].data + (b * S + starts[l]) * C)
            }
            let sine = sines.tokens(height: h, width: w, features: C / 2)
            for t in 0..<hw {
                for c in 0..<C { pos.data[(starts[l] + t) * C + c] = sine.data[t * C + c] + levelEncoding.value.data[l * C + c] }
            }
        }
        for (k, layer) in encoder.enumerated() {
            PhaseTimer.measure("pd.encoderLayer") { layer.forward(tokens[k], pos: pos, reference: reference, shapes: shapes, into: tokens[k + 1]) }
        }
        // Stride-8 memory as a map, upsampled to stride 4 and added to the lateral conv.
        let (h8, w8) = shapes[2]
        let map8 = self.map8.ensure([B, C, h8, w8])
        for b in 0..<B {
            Kernels.transpose(memory.data + (b * S + starts[2]) * C, rows: h8 * w8, cols: C, into: map8.data + b * C * h8 * w8)
        }
        let lateral = PhaseTimer.measure("pd.lateral") { lateralConv.forward(features[0]) }
        let y = self.y.ensure(lateral.shape)
        Resample.bilinear(map8, into: y)
        Kernels.axpy(1, lateral, y)
        let convolved = PhaseTimer.measure("pd.outputConv") { outputConv.forward(y) }
        let out4 = self.out4.ensure(convolved.shape)
        out4.copy(from: convolved)
        let mf = maskFeatures.ensure(out4.shape)
        PhaseTimer.measure("pd.maskFeature") { maskFeature.forward(out4, into: mf) }
        return mf
    }

    /// Backward of the last forward: accumulates parameter gradients and dFeatures[i]
    /// ([B, C_in, h, w], strides 4, 8, 16, 32) from ∂mask features and ∂memory [B, S, C]
    /// (the transformer decoder's gradient on the memory tokens; consumed).
    public func backward(dMaskFeatures: Tensor, dMemory: Tensor, dFeatures: [Tensor?]) {
        let C = channels, B = features[0].shape[0]
        let starts = DeformableAttentionCore.levelStarts(shapes)
        let S = shapes.reduce(0) { $0 + $1.h * $1.w }
        let out4 = self.out4.tensor, y = self.y.tensor
        let dOut4 = scratch.zeros("pd.dOut4", out4.shape)
        maskFeature.backward(dOutput: dMaskFeatures, input: out4, dInput: dOut4)
        let dY = scratch.zeros("pd.dY", y.shape)
        outputConv.backward(dOutput: dOut4, input: y, dInput: dY)
        lateralConv.backward(dOutput: dY, input: features[0], dInput: dFeatures[0])
        let dMap8 = scratch.zeros("pd.dMap8", map8.tensor.shape)
        Resample.bilinearBackward(dOutput: dY, dInput: dMap8)
        let (h8, w8) = shapes[2]
        let rows8 = scratch.zeros("pd.rows8", [h8 * w8, C])
        for b in 0..<B {
            Kernels.transpose(dMap8.data + b * C * h8 * w8, rows: C, cols: h8 * w8, into: rows8.data)
            Kernels.axpy(1, rows8.data, dMemory.data + (b * S + starts[2]) * C, count: h8 * w8 * C)
        }
        var d = dMemory
        let dPos = scratch.zeros("pd.dPos", [S, C])
        for k in stride(from: encoder.count - 1, through: 0, by: -1) {
            // Two buffers in turn: a layer's ∂input is the next (earlier) layer's ∂output.
            let dIn = scratch.zeros(k % 2 == 0 ? "pd.dTokens0" : "pd.dTokens1", [B, S, C])
            encoder[k].backward(dOutput: d, dInput: dIn, dPos: dPos)
            d = dIn
        }
        if let dl = levelEncoding.grad {
            for l in 0..<3 {
                for t in 0..<(shapes[l].h * shapes[l].w) {
                    for c in 0..<C { dl.data[l * C + c] += dPos.data[(starts[l] + t) * C + c] }
                }
            }
        }
        for l in 0..<3 {
            let (h, w) = shapes[l], hw = h * w
            let dz = scratch.zeros("pd.dz", [B, C, h, w])
            for b in 0..<B {
                Kernels.transpose(d.data + (b * S + starts[l]) * C, rows: hw, cols: C, into: dz.data + b * C * hw)
            }
            inputConvs[l].backward(dOutput: dz, input: features[3 - l], dInput: dFeatures[3 - l])
        }
    }
}
