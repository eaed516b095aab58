import Backbone
import Core
import Foundation
import HDF5
import ImageIO
import Numerics
import PEFT
import Visualization
import XCTest

final class FeatureDumpTests: XCTestCase {
    let B = 2, C = 24, h = 8, w = 12, patch = 4

    private func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "viz-dump-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    /// A dump in the reference §Files layout for layers 0 and 3: smooth random features, their
    /// `kind` spectrum, the band-pass causal part, refined = spatial + 0.1·T⁻¹(causal).
    /// `stored` and `normalization` are the root attributes of newer dumps (absent: an older
    /// dump's file, written by hand here so the test does not depend on the writer).
    private func writeDump(_ path: String, kind: TransformKind = .dct, stored: String? = nil,
                           normalization: ImageNormalization? = nil, skip: Set<String> = [],
                           format: String = "causal-tune-features") throws {
        let f = try HDF5File.create(path)
        try f.setAttribute("format", .string(format))
        try f.setAttribute("version", .int64(1))
        try f.setAttribute("grid", .int64s([Int64(h), Int64(w)]))
        if let stored { try f.setAttribute("transform", .string(stored)) }
        if let normalization {
            try f.setAttribute("image_mean", .float64s(normalization.mean.map(Double.init)))
            try f.setAttribute("image_std", .float64s(normalization.std.map(Double.init)))
        }
        var rng = RandomGenerator(seed: 11)
        let t = SpectralTransform(kind: kind, h: h, w: w)
        let filter = FrequencyFilter(mode: .bandpass, shape: .gaussian, low: 0.2, high: 0.7)
        let mask = filter.mask(for: t)
        let n = h * w
        for layer in [0, 3] {
            let spatial = Tensor(zeros: [B, C, h, w])
            for b in 0..<B {
                let basis = (0..<(4 * C)).map { _ in rng.normal() }
                for c in 0..<C {
                    for y in 0..<h {
                        for x in 0..<w {
                            let fx = Float(x) / Float(w), fy = Float(y) / Float(h)
                            let p0 = sin(6 * fx + Float(layer)), p1 = cos(5 * fy), p2 = fx * fy, p3 = rng.normal() * 0.05
                            spatial[b, c, y, x] = basis[c] * p0 + basis[C + c] * p1 + basis[2 * C + c] * p2 + p3 + Float(b)
                        }
                    }
                }
            }
            let spectrum = Tensor(zeros: spatial.shape)
            t.forward(src: spatial.data, srcStride: n, dst: spectrum.data, dstStride: n, batch: B * C, channels: 1)
            let causal = Tensor(zeros: spatial.shape)
            for i in 0..<causal.count { causal.data[i] = spectrum.data[i] * mask.data[i % n] }
            let back = Tensor(zeros: spatial.shape)
            t.inverse(src: causal.data, srcStride: n, dst: back.data, dstStride: n, batch: B * C, channels: 1)
            let refined = Tensor(zeros: spatial.shape)
            for i in 0..<refined.count { refined.data[i] = spatial.data[i] + 0.1 * back.data[i] }
            let energy = Tensor(shape: [B, 3], values: [0.5, 0.3, 0.2, 0.3, 0.5, 0.2])
            let g = FeatureDumpFormat.layerGroup(layer)
            for (name, tensor) in [("spatial", spatial), ("spectrum", spectrum), ("causal", causal), ("refined", refined), ("band_energy", energy)]
            where !skip.contains("\(g)/\(name)") {
                try f.write(tensor, to: "/\(g)/\(name)")
            }
        }
        if !skip.contains("mask") { try f.write(mask, to: "/mask") }
        let image = Tensor(zeros: [B, 3, h * patch, w * patch])
        for i in 0..<image.count { image.data[i] = Float(i % 97) / 40 - 1.2 }
        if !skip.contains("image") { try f.write(image, to: "/image") }
        try f.close()
    }

    func testFeaturePicturesHaveFivePanelsOfTheGridSizeAndOneFilePerLayerAndImage() throws {
        let dir = try tempDir()
        try writeDump(dir + "/dump.h5")
        let dump = try FeatureDump(path: dir + "/dump.h5")
        XCTAssertEqual(dump.layers, [0, 3])
        let written = try FeaturePictures.write(dump: dump, layers: nil, outDir: dir + "/out")
        XCTAssertEqual(Set(written.map { ($0 as NSString).lastPathComponent }),
                       ["layer_00_image_0.png", "layer_00_image_1.png", "layer_03_image_0.png", "layer_03_image_1.png",
                        "image_0_layers.png", "image_1_layers.png"])
        // Panels: grid enlarged by ⌊192 / 12⌋ = 16 → 192 × 128 each, five side by side.
        let s = FeaturePictures.panelSize / max(h, w)
        let pw = w * s, ph = h * s
        let one = try ImageIO.readRGB(dir + "/out/layer_03_image_1.png")
        XCTAssertEqual(one.width, 8 + 5 * (pw + 8))
        XCTAssertEqual(one.height, 8 + BitmapFont.lineHeight + 4 + ph + 8)
        let stacked = try ImageIO.readRGB(dir + "/out/image_0_layers.png")
        XCTAssertEqual(stacked.width, one.width)
        XCTAssertEqual(stacked.height, 2 * one.height)
        // Each PCA panel varies (not a constant map).
        let rows = try FeaturePictures.layerRows(dump: dump, layer: 0)
        XCTAssertEqual(rows.count, B)
        XCTAssertEqual(rows[0].map { $0.title }, ["layer 0: input", "spatial (PCA)", "T⁻¹(causal) (PCA)", "refined (PCA)", "log|dct| + mask"])
        for panel in rows[1][1...3] {
            XCTAssertEqual(panel.image.width, pw)
            XCTAssertEqual(panel.image.height, ph)
            XCTAssertGreaterThan(Set(panel.image.pixels).count, 20, "\(panel.title) is constant")
        }
    }

    func testDumpWithoutPEFTDatasetsShowsInputAndSpatialOnly() throws {
        let dir = try tempDir()
        try writeDump(dir + "/none.h5", skip: ["layer_00/spectrum", "layer_00/causal", "layer_00/refined", "mask"])
        let rows = try FeaturePictures.layerRows(dump: try FeatureDump(path: dir + "/none.h5"), layer: 0)
        XCTAssertEqual(rows[0].map { $0.title }, ["layer 0: input", "spatial (PCA)"])
        let rows3 = try FeaturePictures.layerRows(dump: try FeatureDump(path: dir + "/none.h5"), layer: 3)
        XCTAssertEqual(rows3[0].map { $0.title }, ["layer 3: input", "spatial (PCA)", "T⁻¹(causal) (PCA)", "refined (PCA)", "log|dct|"])
    }

    func testTransformIsIdentifiedFromTheDumpAndInvertsCausalPart() throws {
        let dir = try tempDir()
        for kind in [TransformKind.dct, .fft, .haar] {
            try writeDump(dir + "/\(kind).h5", kind: kind)
            let dump = try FeatureDump(path: dir + "/\(kind).h5")
            let spatial = try dump.features(layer: 0, .spatial), spectrum = try dump.features(layer: 0, .spectrum)
            let found = FeaturePictures.identifyTransform(spatial: spatial, spectrum: spectrum)
            XCTAssertEqual(found.kind, kind)
            XCTAssertLessThan(found.error, 1e-5)
            // T⁻¹(spectrum) recovers spatial.
            let back = FeaturePictures.inverse(spectrum, kind: kind)
            var err: Float = 0
            for i in 0..<back.count { err = max(err, abs(back.data[i] - spatial.data[i])) }
            XCTAssertLessThan(err, 1e-4, "\(kind)")
        }
    }

    func testStoredTransformIsUsedAndOlderDumpsHaveItRecovered() throws {
        let dir = try tempDir()
        func spectrumTitle(_ file: String) throws -> String {
            try XCTUnwrap(FeaturePictures.layerRows(dump: FeatureDump(path: dir + "/" + file), layer: 0)[0].last?.title)
        }
        // A stored kind is taken as written, even where the data would suggest another.
        try writeDump(dir + "/stored.h5", kind: .dct, stored: "haar")
        XCTAssertEqual(try FeatureDump(path: dir + "/stored.h5").storedTransform, .haar)
        XCTAssertEqual(try spectrumTitle("stored.h5"), "log|haar| + mask")
        // Without the attribute (a dump written before it existed) the data decides.
        try writeDump(dir + "/old.h5", kind: .fft)
        XCTAssertNil(try FeatureDump(path: dir + "/old.h5").storedTransform)
        XCTAssertEqual(try spectrumTitle("old.h5"), "log|fft| + mask")
        try writeDump(dir + "/bad.h5", stored: "wavelet")
        XCTAssertThrowsError(try FeatureDump(path: dir + "/bad.h5")) { e in
            XCTAssertEqual((e as? CausalTuneError)?.message,
                           "\(dir)/bad.h5: root attribute transform is 'wavelet', not dct, fft, haar or identity")
        }
    }

    func testInputIsDenormalisedWithTheStoredStatisticsElseImageNets() throws {
        let dir = try tempDir()
        try writeDump(dir + "/clip.h5", normalization: .clip)
        try writeDump(dir + "/old.h5")
        let clip = try FeatureDump(path: dir + "/clip.h5"), old = try FeatureDump(path: dir + "/old.h5")
        XCTAssertEqual(clip.normalization, .clip)
        XCTAssertEqual(old.normalization, .imagenet)
        let images = try clip.images()
        for (dump, n) in [(clip, ImageNormalization.clip), (old, .imagenet)] {
            let picture = dump.denormalise(images, index: 1)
            let plane = images.shape[2] * images.shape[3]
            for (i, ch) in [(0, 0), (5, 1), (plane - 1, 2)] {
                let x = images.data[plane * 3 + ch * plane + i]
                let expected = UInt8(min(255, max(0, (x * n.std[ch] + n.mean[ch]).rounded())))
                XCTAssertEqual(picture.pixels[3 * i + ch], expected)
            }
        }
    }

    func testBandEnergiesAreMeansOverImagesAndTableListsLayers() throws {
        let dir = try tempDir()
        try writeDump(dir + "/dump.h5")
        let e = try FeaturePictures.bandEnergies(dump: try FeatureDump(path: dir + "/dump.h5"))
        XCTAssertEqual(e.map { $0.layer }, [0, 3])
        XCTAssertEqual(e[1].fractions[0], 0.4, accuracy: 1e-6)
        XCTAssertEqual(e[1].fractions[1], 0.4, accuracy: 1e-6)
        XCTAssertEqual(e[1].fractions[2], 0.2, accuracy: 1e-6)
        let table = FeaturePictures.bandTable(e).split(separator: "\n")
        XCTAssertEqual(table.count, 3)
        XCTAssertEqual(String(table[2]), "    3   0.4000   0.4000   0.2000")
        let chart = FeaturePictures.bandChart(e, title: "bands")
        XCTAssertEqual(chart.width, 480)
        XCTAssertEqual(chart.height, 360)
    }

    func testDumpWithoutNeededDatasetsGivesOneClearLine() throws {
        let dir = try tempDir()
        try writeDump(dir + "/a.h5", skip: ["layer_03/spatial"])
        XCTAssertThrowsError(try FeaturePictures.write(dump: try FeatureDump(path: dir + "/a.h5"), layers: nil, outDir: dir + "/o")) { e in
            XCTAssertEqual((e as? CausalTuneError)?.message,
                           "\(dir)/a.h5: dataset /layer_03/spatial missing — `visualize features` needs /layer_<ii>/{spatial}")
        }
        try writeDump(dir + "/b.h5", skip: ["image"])
        XCTAssertThrowsError(try FeaturePictures.write(dump: try FeatureDump(path: dir + "/b.h5"), layers: [0], outDir: dir + "/o")) { e in
            XCTAssertEqual((e as? CausalTuneError)?.message, "\(dir)/b.h5: dataset /image missing — `visualize features` needs it")
        }
        XCTAssertThrowsError(try FeaturePictures.write(dump: try FeatureDump(path: dir + "/b.h5"), layers: [5], outDir: dir + "/o")) { e in
            XCTAssertEqual((e as? CausalTuneError)?.message, "\(dir)/b.h5: no /layer_05 (the dump has layers 0, 3)")
        }
        try writeDump(dir + "/c.h5", format: "causal-tune-checkpoint")
        XCTAssertThrowsError(try FeatureDump(path: dir + "/c.h5")) { e in
            XCTAssertEqual((e as? CausalTuneError)?.message,
                           "\(dir)/c.h5: not a feature dump (format = \"causal-tune-checkpoint\"; write one with `causal-tune features`)")
        }
        let empty = try HDF5File.create(dir + "/d.h5")
        try empty.close()
        XCTAssertThrowsError(try FeaturePictures.bandEnergies(dump: try FeatureDump(path: dir + "/d.h5"))) { e in
            XCTAssertEqual((e as? CausalTuneError)?.message,
                           "\(dir)/d.h5: no /layer_<ii> groups — `visualize bands` needs a feature dump written by `causal-tune features`")
        }
        XCTAssertThrowsError(try FeatureDump(path: dir + "/missing.h5")) { e in
            XCTAssertEqual((e as? CausalTuneError)?.message, "\(dir)/missing.h5: no such file")
        }
    }
}
