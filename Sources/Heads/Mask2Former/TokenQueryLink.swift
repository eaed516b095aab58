import Numerics
import Layers

/// Rein's token → query link (`Reins.return_auto` with `link_token_to_query`): the learnable
/// tokens of all L layers become the decoder's query embedding.
///
///     U = transform(T)            T [L, m, C_b] → U [L, m, D]      Linear(C_b, D)
///     V[i, 3c + 0] = max_l U[l, i, c],  V[i, 3c + 1] = mean_l U[l, i, c],  V[i, 3c + 2] = U[L−1, i, c]
///     query_embed = merge(V)      V [m, 3D] → [m, D]               Linear(3D, D)
///
/// (the max-pool, average-pool and last-layer columns interleaved per channel, as
/// `torch.cat([max, avg, last], -1).flatten(-2)` of `[m, D, 3]` gives). Backward: the max
/// column routes its gradient to the layer that held the maximum (the first on ties), the
/// mean column spreads it by 1/L, the last column goes to layer L−1.
/// Parameter names `transform.*`, `merge.*`.
public final class TokenQueryLink: Module {
    public let transform: Linear, merge: Linear
    public let channels: Int   // D
    private var tokens = Tensor(zeros: [0])
    private var u = CacheBuffer(), v = CacheBuffer(), out = CacheBuffer()
    private var argmax: [Int] = []
    private let scratch: ScratchArena

    public init(backboneChannels: Int, channels: Int = 256, scratch: ScratchArena = ScratchArena()) {
        self.channels = channels
        self.scratch = scratch
        transform = Linear(inputDimensions: backboneChannels, outputDimensions: channels)
        merge = Linear(inputDimensions: 3 * channels, outputDimensions: channels)
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        transform.parameters(prefix: prefix + "transform.") + merge.parameters(prefix: prefix + "merge.")
    }

    public func reset(rng: inout RandomGenerator) {
        transform.reset(rng: &rng)
        merge.reset(rng: &rng)
    }

    /// tokens [L, m, C_b] → query embedding [m, D] (a cached tensor, valid until the next forward).
    public func forward(_ tokens: Tensor) -> Tensor {
        let (L, m, D) = (tokens.shape[0], tokens.shape[1], channels)
        self.tokens = tokens
        let u = self.u.ensure([L * m, D])
        transform.forward(tokens.reshaped([L * m, tokens.shape[2]]), into: u)
        let v = self.v.ensure([m, 3 * D])
        if argmax.count != m * D { argmax = [Int](repeating: 0, count: m * D) }
        let up = u.data, vp = v.data
        for i in 0..<m {
            for c in 0..<D {
                var best = up[i * D + c], arg = 0, sum: Float = 0
                for l in 0..<L {
                    let x = up[(l * m + i) * D + c]
                    sum += x
                    if x > best { best = x; arg = l }
                }
                vp[i * 3 * D + 3 * c] = best
                vp[i * 3 * D + 3 * c + 1] = sum / Float(L)
                vp[i * 3 * D + 3 * c + 2] = up[((L - 1) * m + i) * D + c]
                argmax[i * D + c] = arg
            }
        }
        let out = self.out.ensure([m, D])
        merge.forward(v, into: out)
        return out
    }

    /// Accumulates parameter gradients and ∂tokens [L, m, C_b] (when given) from ∂query_embed [m, D].
    public func backward(dOutput: Tensor, dTokens: Tensor?) {
        let (L, m, D) = (tokens.shape[0], tokens.shape[1], channels)
        let dv = scratch.zeros("link.dv", [m, 3 * D])
        merge.backward(dOutput: dOutput, input: v.tensor, dInput: dv)
        let du = scratch.zeros("link.du", [L * m, D])
        let dvp = dv.data, dup = du.data
        for i in 0..<m {
            for c in 0..<D {
                dup[(argmax[i * D + c] * m + i) * D + c] += dvp[i * 3 * D + 3 * c]
                let g = dvp[i * 3 * D + 3 * c + 1] / Float(L)
                for l in 0..<L { dup[(l * m + i) * D + c] += g }
                dup[((L - 1) * m + i) * D + c] += dvp[i * 3 * D + 3 * c + 2]
            }
        }
        transform.backward(dOutput: du, input: tokens.reshaped([L * m, tokens.shape[2]]),
                           dInput: dTokens?.reshaped([L * m, tokens.shape[2]]))
    }
}
