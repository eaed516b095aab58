/// The per-channel statistics RGB bytes are normalised with, `(x − mean) / std`, on the
/// 0…255 scale (`model.backbone.normalize`).
public struct ImageNormalization: Equatable, Sendable {
    public let mean: [Float]
    public let std: [Float]

    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == 3 && std.count == 3, "ImageNormalization: 3 channels")
        self.mean = mean
        self.std = std
    }

    /// ImageNet's, used for every backbone by default (as Rein and mmsegmentation).
    public static let imagenet = ImageNormalization(mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375])
    /// OpenAI CLIP's own (0.48145466, 0.4578275, 0.40821073) / (0.26862954, 0.26130258,
    /// 0.27577711), times 255.
    public static let clip = ImageNormalization(mean: [122.7709383, 116.7460125, 104.09373615],
                                                std: [68.5005327, 66.6321579, 70.32316305])

    /// The names `named` knows.
    public static let names = ["imagenet", "clip"]

    /// `imagenet` or `clip`.
    public static func named(_ name: String) -> ImageNormalization? {
        switch name {
        case "imagenet": return .imagenet
        case "clip": return .clip
        default: return nil
        }
    }
}
