import Numerics

/// Group normalisation (`torch.nn.GroupNorm(G, C, eps)`) of `[B, C, H, W]` maps: the channels
/// are split into G groups of C/G; per image b and group g, over its n = (C/G)·H·W elements,
///
///     μ = mean(x),  rstd = 1/√(var(x) + eps)      (biased variance)
///     x̂ = (x − μ)·rstd,  y[b, c] = γ_c x̂[b, c] + β_c
///
/// Backward per (b, g), with ĝ = dy ⊙ γ_c:
///
///     dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)),   dγ_c += Σ dy x̂,   dβ_c += Σ dy
///
/// Caches mean and rstd [B, G] of the last forward. Initialisation: γ = 1, β = 0.
public final class GroupNorm: Layer {
    public let groups: Int, channels: Int
    public let eps: Float
    public let weight: Parameter   // γ [C]
    public let bias: Parameter     // β [C]
    private var mean = CacheBuffer(), rstd = CacheBuffer()

    public init(groups: Int, channels: Int, eps: Float = 1e-5) {
        precondition(groups > 0 && channels % groups == 0, "GroupNorm: \(channels) channels in \(groups) groups")
        self.groups = groups
        self.channels = channels
        self.eps = eps
        weight = Parameter(Tensor(shape: [channels], repeating: 1))
        bias = Parameter(zeros: [channels])
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        [NamedParameter(name: prefix + "weight", parameter: weight), NamedParameter(name: prefix + "bias", parameter: bias)]
    }

    private func dims(_ x: Tensor) -> (B: Int, HW: Int) {
        precondition(x.rank >= 2 && x.shape[1] == channels, "GroupNorm: input \(x.shape), C = \(channels)")
        return (x.shape[0], x.count / (x.shape[0] * channels))
    }

    /// input [B, C, H, W] → output (written, same shape; may alias input).
    public func forward(_ input: Tensor, into output: Tensor) {
        let (B, HW) = dims(input)
        precondition(output.count == input.count, "GroupNorm: output \(output.shape) for input \(input.shape)")
        let G = groups, cg = channels / G, n = cg * HW
        let m = mean.ensure([B, G]), r = rstd.ensure([B, G])
        let x = input.data, y = output.data, gamma = weight.value.data, beta = bias.value.data
        let mp = m.data, rp = r.data, e = eps
        Parallel.forEach(B * G) { range in
            for bg in range {
                let base = bg * n
                var s = 0.0
                for i in 0..<n { s += Double(x[base + i]) }
                let mu = s / Double(n)
                var v = 0.0
                for i in 0..<n { let d = Double(x[base + i]) - mu; v += d * d }
                let rs = Float(1 / (v / Double(n) + Double(e)).squareRoot())
                let muF = Float(mu)
                mp[bg] = muF; rp[bg] = rs
                let c0 = (bg % G) * cg
                for c in 0..<cg {
                    let a = gamma[c0 + c] * rs, b = beta[c0 + c] - muF * a
                    let o = base + c * HW
                    for i in 0..<HW { y[o + i] = x[o + i] * a + b }
                }
            }
        }
    }

    /// Full backward (after `forward` on the same `input`): accumulates dx when given and dγ,
    /// dβ for the parameters that require a gradient.
    public func backward(dOutput: Tensor, input: Tensor, dInput: Tensor?) {
        backward(dOutput: dOutput, input: input, dInput: dInput, dWeight: weight.grad, dBias: bias.grad)
    }

    /// Frozen backward: accumulates only dx.
    public func backwardInput(dOutput: Tensor, input: Tensor, dInput: Tensor) {
        backward(dOutput: dOutput, input: input, dInput: dInput, dWeight: nil, dBias: nil)
    }

    private func backward(dOutput: Tensor, input: Tensor, dInput: Tensor?, dWeight: Tensor?, dBias: Tensor?) {
        let (B, HW) = dims(input)
        precondition(dOutput.count == input.count && mean.tensor.count == B * groups, "GroupNorm: backward without a matching forward")
        let G = groups, cg = channels / G, n = cg * HW
        let x = input.data, dy = dOutput.data, gamma = weight.value.data
        let mp = mean.tensor.data, rp = rstd.tensor.data
        // Parameter gradients: per channel, serial over the batch (disjoint channels per worker).
        if dWeight != nil || dBias != nil {
            let dw = dWeight?.data, db = dBias?.data
            Parallel.forEach(channels) { range in
                for c in range {
                    let g = c / cg
                    var sw = 0.0, sb = 0.0
                    for b in 0..<B {
                        let mu = mp[b * G + g], rs = rp[b * G + g], o = (b * channels + c) * HW
                        for i in 0..<HW {
                            sw += Double(dy[o + i] * (x[o + i] - mu) * rs)
                            sb += Double(dy[o + i])
                        }
                    }
                    dw?[c] += Float(sw)
                    db?[c] += Float(sb)
                }
            }
        }
        guard let dxT = dInput else { return }
        let dx = dxT.data
        Parallel.forEach(B * G) { range in
            for bg in range {
                let base = bg * n, c0 = (bg % G) * cg
                let mu = mp[bg], rs = rp[bg]
                var sg = 0.0, sgx = 0.0
                for c in 0..<cg {
                    let gm = gamma[c0 + c], o = base + c * HW
                    for i in 0..<HW {
                        let gh = Double(dy[o + i] * gm)
                        sg += gh
                        sgx += gh * Double((x[o + i] - mu) * rs)
                    }
                }
                let mg = Float(sg / Double(n)), mgx = Float(sgx / Double(n))
                for c in 0..<cg {
                    let gm = gamma[c0 + c], o = base + c * HW
                    for i in 0..<HW {
                        let xh = (x[o + i] - mu) * rs
                        dx[o + i] += rs * (dy[o + i] * gm - mg - xh * mgx)
                    }
                }
            }
        }
    }
}
