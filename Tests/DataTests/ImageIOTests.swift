import Core
import Foundation
import ImageIO
import Numerics
import XCTest

final class ImageIOTests: XCTestCase {
    func testReadsEveryPNGKindAndJPEGLikePIL() throws {
        let exp = try loadJSON(fixture("images/expected.json"))
        let sizes = exp["sizes"] as! [String: [Int]]
        let pal = try ImageIO.readLabels(fixture("images/palette.png"))
        XCTAssertEqual([pal.width, pal.height], sizes["palette.png"])
        XCTAssertEqual(pal.labels.map(Int.init), exp["palette.png"] as! [Int], "palette PNG keeps raw indices")
        let grey = try ImageIO.readLabels(fixture("images/grey.png"))
        XCTAssertEqual(grey.labels.map(Int.init), exp["grey.png"] as! [Int])
        let greyRGB = try ImageIO.readRGB(fixture("images/grey.png"))
        XCTAssertEqual(greyRGB.width, 7)
        let rgba = try ImageIO.readRGB(fixture("images/rgba.png"))
        XCTAssertEqual(rgba.pixels.map(Int.init), exp["rgba.png"] as! [Int])
        let rgb16 = try ImageIO.readRGB(fixture("images/rgb16.png"))
        XCTAssertEqual([rgb16.width, rgb16.height], sizes["rgb16.png"])
        for (a, b) in zip(rgb16.pixels.map(Int.init), exp["rgb16.png"] as! [Int]) { XCTAssertLessThanOrEqual(abs(a - b), 1) }
        let jpg = try ImageIO.readRGB(fixture("images/photo.jpg"))
        XCTAssertEqual([jpg.width, jpg.height], sizes["photo.jpg"])
        let pil = exp["photo.jpg"] as! [Int]
        let maxDiff = zip(jpg.pixels.map(Int.init), pil).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(maxDiff, 2, "libjpeg-turbo decode matches PIL")
        let (w, h) = try ImageIO.size(fixture("images/photo.jpg"))
        XCTAssertEqual([w, h], [24, 16])
    }

    func testPNGRoundTripsRGBAndLabels() throws {
        let dir = try makeTempDir(self)
        var rng = RandomGenerator(seed: 3)
        var img = RGBImage(width: 13, height: 7)
        for i in 0..<img.pixels.count { img.pixels[i] = UInt8(rng.integer(below: 256)) }
        try ImageIO.writePNG(img, to: dir + "/sub/a.png")
        XCTAssertEqual(try ImageIO.readRGB(dir + "/sub/a.png"), img)
        var lab = LabelMap(width: 5, height: 9)
        for i in 0..<lab.labels.count { lab.labels[i] = UInt8(rng.integer(below: 20)) }
        lab.labels[3] = 255
        try ImageIO.writePNG(lab, to: dir + "/l.png")
        XCTAssertEqual(try ImageIO.readLabels(dir + "/l.png"), lab)
    }

    func testBadFilesGiveOneLineNamingTheFile() throws {
        let dir = try makeTempDir(self)
        var img = RGBImage(width: 64, height: 64)
        for i in 0..<img.pixels.count { img.pixels[i] = UInt8((i * 7919) % 251) }
        try ImageIO.writePNG(img, to: dir + "/full.png")
        let bytes = try Foundation.Data(contentsOf: URL(fileURLWithPath: dir + "/full.png"))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: dir + "/cut.png"))
        try "hello".write(toFile: dir + "/text.png", atomically: true, encoding: .utf8)
        let jpg = try Foundation.Data(contentsOf: URL(fileURLWithPath: fixture("images/photo.jpg")))
        try jpg.prefix(jpg.count / 2).write(to: URL(fileURLWithPath: dir + "/cut.jpg"))
        for (name, reader) in [("cut.png", 0), ("text.png", 0), ("missing.png", 0), ("cut.jpg", 0),
                               ("cut.png", 1), ("text.png", 1), ("missing.png", 1)] {
            let path = dir + "/" + name
            XCTAssertThrowsError(try { if reader == 0 { _ = try ImageIO.readRGB(path) } else { _ = try ImageIO.readLabels(path) } }()) { e in
                let msg = (e as? CausalTuneError)?.message ?? ""
                XCTAssertTrue(msg.contains(path), "error names the file: \(msg)")
                XCTAssertFalse(msg.contains("\n"))
            }
        }
        XCTAssertThrowsError(try ImageIO.readLabels(dir + "/full.png"), "RGB PNG is not a label map")
    }
}
