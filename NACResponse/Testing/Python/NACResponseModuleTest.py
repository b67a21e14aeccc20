"""ctest entry point for the in-Slicer self-test (registered by slicer_add_python_unittest).

Runs the module's ``NACResponseTest`` in a Slicer started with ``--testing``: no network and no
dependency installation; tests whose core dependencies are missing skip with the reason.
"""

import unittest

import slicer


class NACResponseModuleTest(unittest.TestCase):
    def test_module(self):
        slicer.util.selectModule("NACResponse")
        import NACResponse

        NACResponse.NACResponseTest().runTest()


if __name__ == "__main__":
    unittest.main()
