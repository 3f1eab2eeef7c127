"""Where MegadetectorLite's weights come from, pinned by hash. setup.py reads this file too (one source).

Plain constants only: the build step runs this file on its own, before the package is installed.
"""

ZAMBA_VERSION = "2.7.2"
ZAMBA_WHEEL_URL = (
    "https://files.pythonhosted.org/packages/6d/02/e7abffcda7b6e141f89c837a9c87b47afab3b8a68328a09d2d53f7c0e1b1/"
    "zamba-2.7.2-py3-none-any.whl"
)
ZAMBA_WHEEL_SHA256 = "9683e004af3219635937d2a854b4443fe51527e242b2f3602267159a039571c6"
ZAMBA_WHEEL_BYTES = 40_813_832

# Members of the wheel that are kept; the rest of zamba is never unpacked.
WEIGHTS_MEMBER = "zamba/object_detection/yolox/assets/yolox_tiny_640_20220528.pth"
WEIGHTS_SHA256 = "31f8690fc62f9d0756f1e8c09b0b02e5ade106173ed0a30743d47c004f88f4e0"
LICENSE_MEMBER = "zamba-2.7.2.dist-info/licenses/LICENSE"

# Their names inside the installed package.
WEIGHTS_FILE = "yolox_tiny_640_20220528.pth"
LICENSE_FILE = "LICENSE-zamba"
