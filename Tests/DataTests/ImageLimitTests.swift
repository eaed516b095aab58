import Core
import Data
import Foundation
import Logging
import ImageIO
import XCTest

/// Image headers that claim huge sizes are refused before decoding; label values outside
/// the encoding are reported once per file.
final class ImageLimitTests: XCTestCase {
    static func crc32(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (0xEDB8_8320 & (0 &- (c & 1))) }
        }
        return ~c
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    /// A valid small PNG whose IHDR is rewritten to `width × height` (CRC fixed up).
    static func hugePNG(from path: String, width: UInt32, height: UInt32) throws -> [UInt8] {
        var b = [UInt8](try Foundation.Data(contentsOf: URL(fileURLWithPath: path)))
        // Signature (8), length (4), "IHDR" (4), width, height, ...; the CRC covers type + 13 data bytes.
        b.replaceSubrange(16..<20, with: be32(width))
        b.replaceSubrange(20..<24, with: be32(height))
        b.replaceSubrange(29..<33, with: be32(crc32(Array(b[12..<29]))))
        return b
    }

    func testPNGHeaderClaimingHugeSizeIsRefusedBeforeDecoding() throws {
        let dir = try makeTempDir(self)
        try ImageIO.writePNG(RGBImage(width: 4, height: 4, fill: 9), to: dir + "/small.png")
        try ImageIO.writePNG(LabelMap(width: 4, height: 4, fill: 1), to: dir + "/label.png")
        let rgb = dir + "/huge.png", label = dir + "/huge_label.png"
        try Foundation.Data(try Self.hugePNG(from: dir + "/small.png", width: 100_000, height: 100_000)).write(to: URL(fileURLWithPath: rgb))
        try Foundation.Data(try Self.hugePNG(from: dir + "/label.png", width: 100_000, height: 100_000)).write(to: URL(fileURLWithPath: label))
        XCTAssertLessThan(try FileManager.default.attributesOfItem(atPath: rgb)[.size] as! Int, 1000)
        for (path, read) in [(rgb, { _ = try ImageIO.readRGB(rgb) }), (label, { _ = try ImageIO.readLabels(label) })] {
            XCTAssertThrowsError(try read()) { e in
                let msg = (e as? CausalTuneError)?.message ?? "\(e)"
                XCTAssertTrue(msg.contains(path) && msg.contains("100000×100000") && msg.contains("CAUSAL_TUNE_MAX_IMAGE_PIXELS"), msg)
                XCTAssertFalse(msg.contains("\n"))
            }
        }
    }

    func testJPEGHeaderClaimingHugeSizeIsRefusedBeforeDecoding() throws {
        let dir = try makeTempDir(self)
        var b = [UInt8](try Foundation.Data(contentsOf: URL(fileURLWithPath: fixture("images/photo.jpg"))))
        // SOFn: FF C0…C2, length (2), precision (1), height (2), width (2).
        let sof = try XCTUnwrap((2..<(b.count - 9)).first { b[$0] == 0xFF && (0xC0...0xC2).contains(b[$0 + 1]) })
        b.replaceSubrange((sof + 5)..<(sof + 9), with: [0xFF, 0xDC, 0xFF, 0xDC])   // 65500 × 65500
        let path = dir + "/huge.jpg"
        try Foundation.Data(b).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ImageIO.readRGB(path)) { e in
            let msg = (e as? CausalTuneError)?.message ?? "\(e)"
            XCTAssertTrue(msg.contains(path) && msg.contains("65500×65500"), msg)
        }
    }

    func testLimitIsConfigurable() throws {
        let dir = try makeTempDir(self)
        try ImageIO.writePNG(RGBImage(width: 4, height: 4, fill: 9), to: dir + "/small.png")
        XCTAssertEqual(ImageIO.maxPixels, 1 << 28)
        setenv("CAUSAL_TUNE_MAX_IMAGE_PIXELS", "15", 1)
        defer { unsetenv("CAUSAL_TUNE_MAX_IMAGE_PIXELS") }
        XCTAssertEqual(ImageIO.maxPixels, 15)
        XCTAssertThrowsError(try ImageIO.readRGB(dir + "/small.png")) { e in
            XCTAssertTrue(((e as? CausalTuneError)?.message ?? "").contains("limit of 15"))
        }
        setenv("CAUSAL_TUNE_MAX_IMAGE_PIXELS", "16", 1)
        XCTAssertEqual(try ImageIO.readRGB(dir + "/small.png").width, 4)
    }

    func testUndefinedLabelValuesAreReportedOncePerFileWithTheCount() throws {
        let dir = try makeTempDir(self)
        try FileManager.default.createDirectory(atPath: dir + "/images", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/labels", withIntermediateDirectories: true)
        try ImageIO.writePNG(RGBImage(width: 4, height: 2, fill: 9), to: dir + "/images/a.png")
        try ImageIO.writePNG(LabelMap(width: 4, height: 2, labels: [0, 18, 19, 40, 254, 255, 3, 40]), to: dir + "/labels/a.png")
        // @unchecked: `lines` is touched only under `lock`.
        final class Box: @unchecked Sendable { var lines: [String] = []; let lock = NSLock() }
        struct Capture: LogHandler {
            let box: Box
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .info
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }
            func log(event: LogEvent) { box.lock.lock(); box.lines.append(event.message.description); box.lock.unlock() }
        }
        let box = Box()
        let saved = LabelValueReport.logger
        LabelValueReport.logger = Logger(label: "test") { _ in Capture(box: box) }
        defer { LabelValueReport.logger = saved }
        let ds = try Dataset(kind: .folder, root: dir, split: "train")
        let (_, labels) = try ds.load(0)
        _ = try ds.load(0)
        XCTAssertEqual(labels.labels, [0, 18, 255, 255, 255, 255, 3, 255])
        XCTAssertEqual(box.lines.count, 1, "\(box.lines)")
        XCTAssertTrue(box.lines.first?.contains("4 of 8 pixels") ?? false, "\(box.lines)")
        XCTAssertTrue(box.lines.first?.contains(dir + "/labels/a.png") ?? false)
        // Label ids: 0…33 are defined.
        XCTAssertNil(LabelValueReport.undefinedValues(LabelMap(width: 2, height: 1, labels: [33, 255]), encoding: .labelId))
        XCTAssertEqual(LabelValueReport.undefinedValues(LabelMap(width: 2, height: 1, labels: [34, 0]), encoding: .labelId)?.count, 1)
    }
}
