import XCTest
import Numerics

final class RandomGeneratorTests: XCTestCase {
    func testSameSeedGivesSameStreamAndSavedStateResumesIt() {
        var a = RandomGenerator(seed: 42), b = RandomGenerator(seed: 42), c = RandomGenerator(seed: 43)
        let sa = (0..<10).map { _ in a.next() }, sb = (0..<10).map { _ in b.next() }
        XCTAssertEqual(sa, sb)
        XCTAssertNotEqual(sa, (0..<10).map { _ in c.next() })
        var resumed = RandomGenerator(state: a.state)
        XCTAssertEqual((0..<5).map { _ in a.uniform() }, (0..<5).map { _ in resumed.uniform() })
        let t1 = Tensor(zeros: [100]), t2 = Tensor(zeros: [100])
        var g1 = RandomGenerator(seed: 7), g2 = RandomGenerator(seed: 7)
        g1.fillNormal(t1)
        g2.fillNormal(t2)
        XCTAssertEqual(t1.array, t2.array)
    }

    func testUniformAndNormalHaveTheRightMoments() {
        var rng = RandomGenerator(seed: 5)
        let n = 200_000
        var su = 0.0, sn = 0.0, sn2 = 0.0
        for _ in 0..<n {
            let u = rng.uniform()
            XCTAssert(u >= 0 && u < 1)
            su += Double(u)
            let z = Double(rng.normal())
            sn += z
            sn2 += z * z
        }
        XCTAssertEqual(su / Double(n), 0.5, accuracy: 0.005)
        XCTAssertEqual(sn / Double(n), 0, accuracy: 0.01)
        XCTAssertEqual(sn2 / Double(n), 1, accuracy: 0.02)
    }
}
