import Backbone
import Data
import Foundation
import ImageIO

/// How a feature dump (`causal-tune features`, and the trainer's `output.dump_features`)
/// brings an image of any size to the backbone's square S × S input (S =
/// `model.backbone.image_size`):
///
///     crop     (default) the centred square of side min(W, H), then resized to S × S
///              (bilinear, PyTorch `align_corners=False`) — the aspect ratio is kept, as in
///              evaluation, whose keep-ratio resize + S × S sliding windows have this square
///              as the middle window; the sides of a wide image are left out
///     stretch  the whole image resized to S × S (a non-square image is distorted)
///
/// A square image is just resized either way. `/image` of the dump holds what the network saw.
public enum FeatureDumpInput {
    public enum Fit: String, CaseIterable, Sendable {
        case crop, stretch
    }

    /// The image as the dump's loader hands it to the backbone (which resizes it to S × S).
    public static func prepare(_ image: RGBImage, fit: Fit) -> RGBImage {
        guard fit == .crop, image.width != image.height else { return image }
        let s = min(image.width, image.height)
        return Transforms.crop(image, Transforms.centerBox(width: image.width, height: image.height, cropWidth: s, cropHeight: s))
    }

    /// Reads `path` (PNG or JPEG) and prepares it; the loader of `FeatureExtraction.dump`.
    public static func load(_ path: String, fit: Fit) throws -> FeatureExtraction.LoadedImage {
        let image = prepare(try ImageIO.readRGB(path), fit: fit)
        return (image.pixels, image.width, image.height)
    }
}
