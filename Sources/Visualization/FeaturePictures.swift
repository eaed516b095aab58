import Backbone
import Core
import Foundation
import ImageIO
import Numerics
import PEFT

/// The pictures of `causal-tune visualize features` (PCA maps and spectra per layer) and
/// `visualize bands`.
///
/// For layer `i` and image `b` of a dump, one row of panels, left to right:
/// 1. the input image (`/image` denormalised),
/// 2. PCA-RGB of `spatial` (features before Causal-Tune),
/// 3. PCA-RGB of `T⁻¹(causal)` (the band-passed spectrum back in the spatial domain — what
///    the tokens refine),
/// 4. PCA-RGB of `refined` (features after Causal-Tune),
/// 5. the log-magnitude spectrum of `spatial` with the mask's half-maximum contour.
/// Panels 3–5 need the PEFT datasets and are left out of dumps without them.
/// Each PCA is fitted on its own map (`PCA.rgb`). `T` is the transform kind stored in the
/// dump; a dump written before it was stored has it recovered from the data (`transform`).
/// No config parsing is needed, and the inverse is exactly the one the model used.
public enum FeaturePictures {
    /// Panel side in pixels (feature maps are enlarged by an integer factor to about this).
    public static let panelSize = 192

    /// The transform of a dump's spectra: the stored kind, else the kind (dct, fft, haar,
    /// identity — PEFT's `SpectralTransform`) whose forward transform of `spatial`
    /// reproduces `spectrum` (relative error < 1e-3).
    public static func transform(dump: FeatureDump, layer i: Int, spatial: Tensor, spectrum: Tensor) throws -> TransformKind {
        if let stored = dump.storedTransform { return stored }
        let (kind, err) = identifyTransform(spatial: spatial, spectrum: spectrum)
        guard err < 1e-3 else {
            let g = FeatureDumpFormat.layerGroup(i)
            throw CausalTuneError("\(dump.path): /\(g)/spectrum is not the dct, fft, haar or identity transform of spatial (best \(kind.rawValue), relative error \(String(format: "%.2g", err)))")
        }
        return kind
    }

    /// The transform kind that maps `spatial[0]` to `spectrum[0]` (both `[B, C, h, w]`).
    public static func identifyTransform(spatial: Tensor, spectrum: Tensor) -> (kind: TransformKind, error: Double) {
        let C = spatial.shape[1], h = spatial.shape[2], w = spatial.shape[3]
        let n = C * h * w
        let test = Tensor(zeros: [C, h, w])
        var best: (TransformKind, Double) = (.identity, .infinity)
        var norm = 0.0
        for i in 0..<n { norm += Double(spectrum.data[i]) * Double(spectrum.data[i]) }
        for kind in [TransformKind.dct, .fft, .haar, .identity] {
            let t = SpectralTransform(kind: kind, h: h, w: w)
            t.forward(src: spatial.data, srcStride: h * w, dst: test.data, dstStride: h * w, batch: C, channels: 1)
            var err = 0.0
            for i in 0..<n { let d = Double(test.data[i]) - Double(spectrum.data[i]); err += d * d }
            let rel = (err / Swift.max(norm, 1e-300)).squareRoot()
            if rel < best.1 { best = (kind, rel) }
        }
        return best
    }

    /// `T⁻¹(x)` for a `[B, C, h, w]` spectrum.
    public static func inverse(_ x: Tensor, kind: TransformKind) -> Tensor {
        let B = x.shape[0], C = x.shape[1], h = x.shape[2], w = x.shape[3]
        let out = Tensor(zeros: x.shape)
        SpectralTransform(kind: kind, h: h, w: w)
            .inverse(src: x.data, srcStride: h * w, dst: out.data, dstStride: h * w, batch: B * C, channels: 1)
        return out
    }

    /// A feature map `[C, h, w]` as its PCA-RGB picture enlarged to about `panelSize`.
    static func pcaPanel(_ f: Tensor) -> Canvas {
        let h = f.shape[1], w = f.shape[2]
        let s = Swift.max(1, panelSize / Swift.max(h, w))
        return PCA.rgb(f).scaled(width: w * s, height: h * s, interpolation: .nearest)
    }

    /// The panels of one layer for every image of the dump: `rows[b]` = titled panels.
    /// `spatial` and `/image` are required; the PEFT datasets are optional (a dump of a
    /// `method: none` model has only `spatial`): without `spectrum`/`causal` (or `/mask`)
    /// the T⁻¹(causal) and spectrum panels are left out, without `refined` its panel.
    public static func layerRows(dump: FeatureDump, layer i: Int) throws -> [[(title: String, image: Canvas)]] {
        let g = FeatureDumpFormat.layerGroup(i)
        let spatial = try dump.features(layer: i, .spatial)
        let optional: (FeatureDumpFormat.LayerDataset) throws -> Tensor? = { dataset in
            guard dump.has(layer: i, dataset) else { return nil }
            let t = try dump.features(layer: i, dataset)
            guard t.shape == spatial.shape else {
                throw CausalTuneError("\(dump.path): /\(g)/\(dataset.rawValue) has shape \(t.shape), /\(g)/spatial \(spatial.shape)")
            }
            return t
        }
        let spectrum = try optional(.spectrum), causal = try optional(.causal), refined = try optional(.refined)
        let images = try dump.images()
        let B = spatial.shape[0], h = spatial.shape[2], w = spatial.shape[3]
        guard images.shape[0] == B else {
            throw CausalTuneError("\(dump.path): /image holds \(images.shape[0]) images, /\(g)/spatial \(B)")
        }
        var mask: [Float]? = nil
        if dump.has(FeatureDumpFormat.mask) {
            let m = try dump.mask()
            guard m.h == h, m.w == w else {
                throw CausalTuneError("\(dump.path): /mask is \(m.h)×\(m.w), the feature grid \(h)×\(w)")
            }
            mask = m.values
        }
        var kind: TransformKind? = nil
        var causalSpatial: Tensor? = nil
        if let spectrum {
            let k = try transform(dump: dump, layer: i, spatial: spatial, spectrum: spectrum)
            kind = k
            if let causal { causalSpatial = inverse(causal, kind: k) }
        }
        let s = Swift.max(1, panelSize / Swift.max(h, w))
        var rows: [[(title: String, image: Canvas)]] = []
        for b in 0..<B {
            let input = dump.denormalise(images, index: b).scaled(width: w * s, height: h * s, interpolation: .bilinear)
            var row: [(title: String, image: Canvas)] = [("layer \(i): input", input), ("spatial (PCA)", pcaPanel(spatial.slice(b)))]
            if let causalSpatial { row.append(("T⁻¹(causal) (PCA)", pcaPanel(causalSpatial.slice(b)))) }
            if let refined { row.append(("refined (PCA)", pcaPanel(refined.slice(b)))) }
            if let spectrum, let kind {
                let title = mask == nil ? "log|\(kind.rawValue)|" : "log|\(kind.rawValue)| + mask"
                row.append((title, SpectrumPicture.render(spectrum: spectrum.slice(b), mask: mask, size: panelSize)))
            }
            rows.append(row)
        }
        return rows
    }

    /// Writes `DIR/layer_<ii>_image_<b>.png` for each chosen layer and image, and
    /// `DIR/image_<b>_layers.png` (all chosen layers stacked) per image; returns the paths.
    public static func write(dump: FeatureDump, layers wanted: [Int]?, outDir: String) throws -> [String] {
        let layers = try dump.requireLayers(wanted, datasets: [.spatial], purpose: "`visualize features`")
        try dump.require("/" + FeatureDumpFormat.image, purpose: "`visualize features`")
        var written: [String] = []
        var perImage: [[Canvas]] = []
        for i in layers {
            let rows = try layerRows(dump: dump, layer: i)
            for (b, row) in rows.enumerated() {
                let pic = Canvas.sideBySide(row, gap: 8)
                let p = (outDir as NSString).appendingPathComponent("\(FeatureDumpFormat.layerGroup(i))_image_\(b).png")
                try pic.writePNG(to: p)
                written.append(p)
                if perImage.count <= b { perImage.append([]) }
                perImage[b].append(pic)
            }
        }
        if layers.count > 1 {
            for (b, pics) in perImage.enumerated() {
                let p = (outDir as NSString).appendingPathComponent("image_\(b)_layers.png")
                try Canvas.stacked(pics).writePNG(to: p)
                written.append(p)
            }
        }
        return written
    }

    /// Per-layer mean band energies `(layer, [low, causal, high])`.
    public static func bandEnergies(dump: FeatureDump, layers wanted: [Int]? = nil) throws -> [(layer: Int, fractions: [Double])] {
        let layers = try dump.requireLayers(wanted, datasets: [.bandEnergy], purpose: "`visualize bands`")
        return try layers.map { ($0, try dump.bandEnergy(layer: $0)) }
    }

    /// The stacked-bar picture of the band energies.
    public static func bandChart(_ energies: [(layer: Int, fractions: [Double])], title: String) -> Canvas {
        StackedBarChart(title: title, xLabel: "layer (block index)", yLabel: "energy fraction",
                        categories: energies.map { String($0.layer) }, segments: ["low", "causal", "high"],
                        values: energies.map { $0.fractions }, colors: [RGB(59, 76, 192), RGB(92, 200, 99), RGB(220, 90, 60)],
                        yMax: 1, width: Swift.max(480, 120 + 36 * energies.count), height: 360).render()
    }

    /// The band energies as a text table (one line per layer).
    public static func bandTable(_ energies: [(layer: Int, fractions: [Double])]) -> String {
        var lines = ["layer      low   causal     high"]
        for e in energies {
            lines.append(String(format: "%5d  %7.4f  %7.4f  %7.4f", e.layer, e.fractions[0], e.fractions[1], e.fractions[2]))
        }
        return lines.joined(separator: "\n")
    }
}
