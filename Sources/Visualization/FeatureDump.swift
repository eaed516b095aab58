import Backbone
import Core
import Foundation
import HDF5
import ImageIO
import Numerics
import PEFT

/// Read access to a feature dump (written by `causal-tune features`; layout and names:
/// `FeatureDumpFormat`). Every missing or mis-shaped dataset is one `CausalTuneError`
/// naming the file, the dataset and what needed it.
public final class FeatureDump {
    public let path: String
    let file: HDF5File
    /// The block indices that have a `/layer_<ii>` group, ascending.
    public let layers: [Int]

    /// The normalisation of `/image`.
    public let normalization: ImageNormalization
    /// The transform the PEFT spectra were made with, as stored; nil for a dump without it
    /// (see `FeaturePictures.transform`).
    public let storedTransform: TransformKind?

    public init(path: String) throws {
        self.path = path
        file = try HDF5File.open(path)
        if file.hasAttribute(FeatureDumpFormat.Attribute.format) {
            let format = (try? file.stringAttribute(FeatureDumpFormat.Attribute.format)) ?? "?"
            if format != FeatureDumpFormat.format {
                throw CausalTuneError("\(path): not a feature dump (format = \"\(format)\"; write one with `causal-tune features`)")
            }
        }
        layers = try file.children(of: "/").filter { $0.kind == .group }.compactMap { FeatureDumpFormat.layerIndex(ofGroup: $0.name) }.sorted()
        normalization = try FeatureDumpFormat.normalization(of: file)
        if let name = try FeatureDumpFormat.transform(of: file) {
            guard let kind = TransformKind(rawValue: name) else {
                throw CausalTuneError("\(path): root attribute \(FeatureDumpFormat.Attribute.transform) is '\(name)', not dct, fft, haar or identity")
            }
            storedTransform = kind
        } else {
            storedTransform = nil
        }
    }

    /// Checks that the dump has the given layers (all of `layers` when nil) and, in each, the
    /// given datasets; `purpose` names the command in the error.
    public func requireLayers(_ wanted: [Int]?, datasets: [FeatureDumpFormat.LayerDataset], purpose: String) throws -> [Int] {
        if layers.isEmpty {
            throw CausalTuneError("\(path): no /layer_<ii> groups — \(purpose) needs a feature dump written by `causal-tune features`")
        }
        let chosen = wanted ?? layers
        for i in chosen {
            guard layers.contains(i) else {
                throw CausalTuneError("\(path): no /\(FeatureDumpFormat.layerGroup(i)) (the dump has layers \(layers.map(String.init).joined(separator: ", ")))")
            }
            for d in datasets {
                let p = "/" + FeatureDumpFormat.layerPath(i, d)
                guard file.isDataset(p) else {
                    throw CausalTuneError("\(path): dataset \(p) missing — \(purpose) needs /layer_<ii>/{\(datasets.map(\.rawValue).joined(separator: ","))}")
                }
            }
        }
        return chosen
    }

    /// Whether the dump has the dataset `path`.
    public func has(_ path: String) -> Bool { file.isDataset(path) }

    /// Whether the dump has `/layer_<ii>/<dataset>`.
    public func has(layer i: Int, _ dataset: FeatureDumpFormat.LayerDataset) -> Bool {
        file.isDataset(FeatureDumpFormat.layerPath(i, dataset))
    }

    /// Checks that a top-level dataset exists.
    public func require(_ dataset: String, purpose: String) throws {
        guard file.isDataset(dataset) else {
            throw CausalTuneError("\(path): dataset \(dataset) missing — \(purpose) needs it")
        }
    }

    /// `/layer_<ii>/<dataset>` as `[B, C, h, w]`.
    public func features(layer i: Int, _ dataset: FeatureDumpFormat.LayerDataset) throws -> Tensor {
        let p = "/" + FeatureDumpFormat.layerPath(i, dataset)
        let t = try file.readTensor(p)
        guard t.rank == 4 else { throw CausalTuneError("\(path): \(p) has shape \(t.shape), expected [B, C, h, w]") }
        return t
    }

    /// `/layer_<ii>/band_energy` averaged over the images: (low, causal, high).
    public func bandEnergy(layer i: Int) throws -> [Double] {
        let p = "/" + FeatureDumpFormat.layerPath(i, .bandEnergy)
        let t = try file.readTensor(p)
        guard t.rank == 2, t.shape[1] == 3, t.shape[0] >= 1 else {
            throw CausalTuneError("\(path): \(p) has shape \(t.shape), expected [B, 3]")
        }
        let B = t.shape[0]
        return (0..<3).map { k in (0..<B).reduce(0.0) { $0 + Double(t.data[$1 * 3 + k]) } / Double(B) }
    }

    /// `/mask` as `(h, w, values)`.
    public func mask() throws -> (h: Int, w: Int, values: [Float]) {
        let t = try file.readTensor(FeatureDumpFormat.mask)
        guard t.rank == 2 else { throw CausalTuneError("\(path): /mask has shape \(t.shape), expected [h, w]") }
        return (t.shape[0], t.shape[1], t.array)
    }

    /// `/image` `[B, 3, H, W]` (normalised network input).
    public func images() throws -> Tensor {
        let t = try file.readTensor(FeatureDumpFormat.image)
        guard t.rank == 4, t.shape[1] == 3 else { throw CausalTuneError("\(path): /image has shape \(t.shape), expected [B, 3, H, W]") }
        return t
    }

    /// Image `b` of a `[B, 3, H, W]` normalised batch back in 8-bit RGB:
    /// `pixel = clamp(x·std + mean, 0, 255)` with the dump's `normalization`.
    public func denormalise(_ images: Tensor, index b: Int) -> Canvas {
        let mean = normalization.mean, std = normalization.std
        let H = images.shape[2], W = images.shape[3]
        var c = Canvas(width: W, height: H, background: .black)
        let base = images.data + b * 3 * H * W
        c.pixels.withUnsafeMutableBufferPointer { p in
            for ch in 0..<3 {
                let src = base + ch * H * W
                for i in 0..<(H * W) {
                    let v = src[i] * std[ch] + mean[ch]
                    p[3 * i + ch] = UInt8(Swift.min(255, Swift.max(0, v.rounded())))
                }
            }
        }
        return c
    }
}
