import Numerics

/// The layers whose forward also records its feature-dump arrays, and what it recorded.
/// Empty (the default) costs nothing.
struct FeatureRecording {
    var layers: Set<Int> = []
    var recorded: [Int: CausalTuneFeatures] = [:]
}

/// The Causal-Tune arrays of the feature dump (`causal-tune features`), computed from a
/// layer's input and output tokens during the backbone's ordinary forward, so the dump
/// shows exactly what the layer did. Their file names are `FeatureDumpFormat`'s.
extension CausalTuneAdapter {
    /// The layers whose forward also records their dump arrays (`recordedFeatures`).
    public var recordFeatures: Set<Int> {
        get { recording.layers }
        set {
            recording.layers = newValue
            recording.recorded = recording.recorded.filter { newValue.contains($0.key) }
        }
    }

    /// The dump arrays of the last forward of every layer in `recordFeatures`.
    public var recordedFeatures: [Int: CausalTuneFeatures] { recording.recorded }

    /// Block `layer`'s features for the feature dump (reference §Files), computed from the block's
    /// output tokens `input [B, T, C]` with the current parameters. Runs the layer's
    /// forward (replacing its cache). Maps are channel-first `[B, C, h, w]`.
    public func features(layer: Int, input: Tensor, prefixTokens: Int, grid: (h: Int, w: Int)) -> CausalTuneFeatures {
        let output = Tensor(zeros: input.shape)
        forward(layer: layer, input: input, output: output, prefixTokens: prefixTokens, grid: grid)
        return recordedFeatures[layer] ?? makeFeatures(input: input, output: output, prefixTokens: prefixTokens, grid: grid)
    }

    /// The dump arrays from a layer's input and output tokens.
    func makeFeatures(input: Tensor, output: Tensor, prefixTokens: Int, grid: (h: Int, w: Int)) -> CausalTuneFeatures {
        let (b, t, c) = shape3(input)
        let n = grid.h * grid.w
        let spectrumTokens = Tensor(zeros: [b, n, c])
        transform.forward(src: input.data + prefixTokens * c, srcStride: t * c, dst: spectrumTokens.data,
                          dstStride: n * c, batch: b, channels: c)
        let causalTokens = spectrumTokens.clone()
        applyMask(causalTokens.data, rows: b * n, n: n)
        let energy = bandEnergy(spectrum: spectrumTokens, grid: grid)
        return CausalTuneFeatures(
            spatial: channelFirst(input.data + prefixTokens * c, stride: t * c, batch: b, n: n, c: c, grid: grid),
            spectrum: channelFirst(spectrumTokens.data, stride: n * c, batch: b, n: n, c: c, grid: grid),
            causal: channelFirst(causalTokens.data, stride: n * c, batch: b, n: n, c: c, grid: grid),
            refined: channelFirst(output.data + prefixTokens * c, stride: t * c, batch: b, n: n, c: c, grid: grid),
            bandEnergy: energy,
            mask: Tensor(shape: [grid.h, grid.w], values: maskValues))
    }

    /// `[B, 3]` energy fractions (low, causal, high) of `spectrum [B, N, C]` (token-major):
    /// `Σ_{u,v,c} w_band(ρ_uv) F²  /  Σ F²` with the band weights of `FrequencyFilter.bandWeights`.
    public func bandEnergy(spectrum: Tensor, grid: (h: Int, w: Int)) -> Tensor {
        prepare(grid: grid)
        let n = grid.h * grid.w
        let c = spectrum.shape.last ?? 1
        let b = spectrum.count / (n * c)
        let rho = transform.radialFrequency()
        let weights = rho.map { filter.bandWeights($0) }
        let out = Tensor(zeros: [b, 3])
        let f = spectrum.data
        for i in 0..<b {
            var low = 0.0, causal = 0.0, high = 0.0, total = 0.0
            for p in 0..<n {
                let row = f + (i * n + p) * c
                var e = 0.0
                for k in 0..<c { e += Double(row[k]) * Double(row[k]) }
                low += weights[p].low * e
                causal += weights[p].causal * e
                high += weights[p].high * e
                total += e
            }
            if total > 0 {
                out.data[i * 3] = Float(low / total)
                out.data[i * 3 + 1] = Float(causal / total)
                out.data[i * 3 + 2] = Float(high / total)
            }
        }
        return out
    }

    /// `[B, N, C]` token-major (image stride `stride`) → `[B, C, h, w]` channel-first.
    private func channelFirst(_ x: UnsafePointer<Float>, stride: Int, batch: Int, n: Int, c: Int,
                              grid: (h: Int, w: Int)) -> Tensor {
        let out = Tensor(zeros: [batch, c, grid.h, grid.w])
        for i in 0..<batch { Kernels.transpose(x + i * stride, rows: n, cols: c, into: out.data + i * c * n) }
        return out
    }
}

/// One layer's arrays for the feature dump (reference §Files); maps `[B, C, h, w]`.
public struct CausalTuneFeatures {
    /// Patch tokens after the block, before PEFT.
    public let spatial: Tensor
    /// `T(spatial)`.
    public let spectrum: Tensor
    /// `M ⊙ spectrum`.
    public let causal: Tensor
    /// Patch tokens after PEFT (the input of the next block).
    public let refined: Tensor
    /// `[B, 3]`: the energy fractions low / causal / high (see `FrequencyFilter`).
    public let bandEnergy: Tensor
    /// `[h, w]`: the mask `M`.
    public let mask: Tensor
}
