import XCTest
import Foundation
import Numerics
import Training

final class SHA256Tests: XCTestCase {
    /// FIPS 180-2 appendix B examples.
    func testKnownDigests() {
        let a = SHA256(); a.update(Array("abc".utf8))
        XCTAssertEqual(a.finalizeHex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let b = SHA256(); b.update(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
        XCTAssertEqual(b.finalizeHex(), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // One million 'a' in uneven pieces (a digest of the whole stream, not of the last piece).
        let c = SHA256()
        let piece = [UInt8](repeating: 0x61, count: 999)
        var left = 1_000_000
        while left > 0 { let n = min(left, piece.count); c.update(Array(piece[0..<n])); left -= n }
        XCTAssertEqual(c.finalizeHex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        let empty = SHA256(); empty.update([])
        XCTAssertEqual(empty.finalizeHex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    func testFileDigestAndMissingFile() throws {
        let path = NSTemporaryDirectory() + "ct-sha-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("abc".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try SHA256.hexDigest(ofFile: path), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertThrowsError(try SHA256.hexDigest(ofFile: path + "-missing")) { e in
            XCTAssertTrue("\(e)".contains(path + "-missing"), "\(e)")
        }
    }
}

/// The recorded backbone digest as read back from a checkpoint whose bytes were damaged.
final class RecordedBackboneDigestTests: XCTestCase {
    private var dir = ""

    override func setUp() {
        dir = NSTemporaryDirectory() + "ct-digest-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A checkpoint recording `weights` with its digest; returns the checkpoint's path and the digest.
    private func checkpoint(recording weights: String) throws -> (path: String, digest: String) {
        let digest = try SHA256.hexDigest(ofFile: weights)
        let set = ParameterSet([(name: "peft/scale", value: Tensor(zeros: [1]), grad: Tensor(zeros: [1]))])
        let path = dir + "/iter_1.h5"
        try Checkpoint.write(to: path, metadata: .init(step: 1, worldSize: 1, config: "", rngState: [1, 2, 3, 4],
                                                       optimizer: "adamw", backboneWeights: weights,
                                                       backboneSHA256: digest, signature: nil),
                             parameters: set, optimizer: nil)
        return (path, digest)
    }

    /// Overwrites the first byte of the stored digest in the file itself.
    private func corrupt(_ path: String, digest: String, with byte: UInt8) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let needle = Array(digest.utf8)
        let at = try XCTUnwrap((0...(bytes.count - needle.count)).first { bytes[$0..<$0 + needle.count].elementsEqual(needle) },
                               "the digest is stored as plain bytes")
        bytes[at] = byte
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    private func reason(_ path: String, weights: String) throws -> String? {
        let reader = try Checkpoint.Reader(path: path)
        return RunBookkeeping.backboneChange(recordedWeights: reader.metadata.backboneWeights,
                                             recordedSHA256: reader.metadata.backboneSHA256,
                                             currentWeights: weights, currentSHA256: try SHA256.hexDigest(ofFile: weights))
    }

    func testIntactDigestMatches() throws {
        let weights = dir + "/w.bin"
        try Data((0..<1000).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: weights))
        let (path, _) = try checkpoint(recording: weights)
        XCTAssertNil(try reason(path, weights: weights))
    }

    func testGarbledDigestIsReportedAsDamage() throws {
        let weights = dir + "/w.bin"
        try Data((0..<1000).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: weights))
        let (path, digest) = try checkpoint(recording: weights)
        try corrupt(path, digest: digest, with: UInt8(ascii: "#"))
        let r = try XCTUnwrap(try reason(path, weights: weights))
        XCTAssertTrue(r.contains("not a SHA-256 digest") && r.contains("damaged"), r)
        XCTAssertFalse(r.contains("\n"), r)
    }

    func testAnotherValidDigestIsReportedAsOtherWeights() throws {
        let weights = dir + "/w.bin"
        try Data((0..<1000).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: weights))
        let (path, digest) = try checkpoint(recording: weights)
        try corrupt(path, digest: digest, with: digest.first == "0" ? UInt8(ascii: "1") : UInt8(ascii: "0"))
        let r = try XCTUnwrap(try reason(path, weights: weights))
        XCTAssertTrue(r.contains("SHA-256 \(digest.prefix(12))"), r)
    }
}
