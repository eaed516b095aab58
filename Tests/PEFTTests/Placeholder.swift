import XCTest

final class PEFTTestsPlaceholder: XCTestCase {}
