import Core
import Layers
import Numerics

/// A frozen backbone that PEFT methods and decode heads attach to: what training, feature
/// dumps and `bench` need from it, and nothing about how its blocks work.
///
/// Tokens are `[B, T, C]` with `T = prefixTokens + h·w` (cls and register tokens first, then
/// the patch grid row by row). `forward` runs the blocks and calls the `adapter` after each
/// one; `backward` is frozen — no weight gradients — and calls the adapter's backward for
/// every block so the adapter's parameters get theirs. `VisionTransformer` (DINOv2, EVA02,
/// CLIP) is the conformer today. Another ViT family is a `BackboneArchitecture.Family` case
/// with its size table and a weight-naming reader (`Weights/`); another kind of backbone is a
/// type conforming to this protocol and its line in `BackboneRegistry`.
public protocol Backbone: Module {
    var architecture: BackboneArchitecture { get }
    var patchSize: Int { get }
    /// The input size fixed when the weights were loaded.
    var imageHeight: Int { get }
    var imageWidth: Int { get }
    /// The patch grid `h×w` of that input.
    var grid: (h: Int, w: Int) { get }
    /// cls + register tokens before the patch tokens.
    var prefixTokens: Int { get }
    /// The embed dim C.
    var channels: Int { get }
    /// The number of blocks (one adapter layer each).
    var depth: Int { get }
    /// Called after every block; nil runs the bare backbone.
    var adapter: BlockAdapter? { get set }
    /// Recompute each block's activations in the backward instead of keeping them.
    var recompute: Bool { get set }

    /// Copies `weights` in, resampling position grid and patch kernel to this input size.
    func load(_ weights: BackboneWeights, positionInterpolation: VisionTransformer.PositionInterpolation) throws
    /// The seeded random initialisation (`weights: random`).
    func randomize(seed: UInt64)

    /// images `[B, 3, H, W]` → the last block's tokens; `observe(i, y)` sees block i's output
    /// before the adapter. `forBackward: false` keeps nothing for a backward.
    @discardableResult
    func forward(_ images: Tensor, forBackward: Bool, observe: ((Int, Tensor) -> Void)?) -> Tensor
    /// The post-adapter tokens of block `i` from the last forward.
    func output(ofBlock i: Int) -> Tensor
    /// Patch tokens `[B, T, C]` as a channels-first map `[B, C, h, w]`.
    func spatialMap(_ tokens: Tensor) -> Tensor
    /// Frozen backward: `outputGradients[i]` is ∂L/∂(output of block i); returns ∂L/∂x₀ (or an
    /// empty tensor when `inputGradient` is false).
    @discardableResult
    func backward(outputGradients: [Int: Tensor], inputGradient: Bool) -> Tensor
    /// Frees what the last forward kept.
    func releaseActivations()
}

extension Backbone {
    @discardableResult
    public func forward(_ images: Tensor, forBackward: Bool = true) -> Tensor {
        forward(images, forBackward: forBackward, observe: nil)
    }

    @discardableResult
    public func backward(outputGradients: [Int: Tensor]) -> Tensor {
        backward(outputGradients: outputGradients, inputGradient: true)
    }
}

extension VisionTransformer: Backbone {
    public var depth: Int { blocks.count }
}

/// Which type builds a `model.backbone.arch`: one line per kind of backbone.
public enum BackboneRegistry {
    public typealias Builder = @Sendable (_ architecture: BackboneArchitecture, _ options: BackboneOptions) -> any Backbone

    /// Every architecture `BackboneArchitecture.named` knows is a Vision Transformer today.
    static let builders: [BackboneArchitecture.Family: Builder] = [
        .dinov2: makeVisionTransformer,
        .eva02: makeVisionTransformer,
        .clip: makeVisionTransformer,
    ]

    @Sendable static func makeVisionTransformer(_ architecture: BackboneArchitecture, _ options: BackboneOptions) -> any Backbone {
        VisionTransformer(architecture: architecture, imageSize: options.imageSize, patchSize: options.patchSize,
                          recompute: options.recompute)
    }

    /// The untrained backbone for `architecture` at the options' input size.
    public static func make(_ architecture: BackboneArchitecture, _ options: BackboneOptions) -> any Backbone {
        guard let build = builders[architecture.family] else {
            preconditionFailure("no backbone type registered for the \(architecture.family) family")
        }
        return build(architecture, options)
    }
}
