import XCTest

final class DistributedTestsPlaceholder: XCTestCase {}
