import Foundation
import Training
import XCTest

/// The trainable-parameter count printed at the start of a run (`trainable parameters: …`),
/// against closed forms (docs/mask2former.md gives the ViT-L/16 figures).
final class ParameterCountTests: XCTestCase {
    private func network(head: String, loraRank: Int? = nil) throws -> SegmentationNetwork {
        try tinyNetwork(head: head, tokens: 8, loraRank: loraRank)
    }

    func testCountsSplitIntoPEFTHeadAndLink() throws {
        let (L, m, C, D, K) = (12, 8, 192, 256, 19)
        let mlps = 2 * (C * C + C) + 1                                  // f_t, f_d, scale
        let linear = try network(head: "linear")
        let lc = linear.trainableCounts
        XCTAssertEqual(lc.peft, L * m * C + mlps)
        XCTAssertEqual(lc.head, 4 * 2 * C + K * 4 * C + K)             // 4 norms, linear [K, 4C]
        XCTAssertEqual(lc.link, 0)
        XCTAssertEqual(lc.total, lc.peft + lc.head)
        XCTAssertTrue(linear.trainableSummary.hasPrefix("trainable parameters: 0.11 M (peft 0.09 M, head 0.02 M)"),
                      linear.trainableSummary)

        let m2f = try network(head: "mask2former", loraRank: 4)
        let c = m2f.trainableCounts
        XCTAssertEqual(c.peft, L * m * 4 + L * 4 * C + mlps)            // tokens_a, tokens_b
        XCTAssertEqual(c.link, (C * D + D) + (3 * D * D + D))            // transform, merge
        XCTAssertEqual(c.total, m2f.trainableParameters.reduce(0) { $0 + $1.parameter.value.count })
        XCTAssertGreaterThan(c.head, 19_000_000)                          // D 256, decoder FFN 2048
        XCTAssertTrue(m2f.trainableSummary.contains("of which the token → query link 0.25 M"), m2f.trainableSummary)
    }
}
