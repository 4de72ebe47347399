"""ament_python package `bisestdc_ros`: the core library, the ROS 2 node and the tools."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "bisestdc_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    # training/ holds configs, checkpoints and the thin scripts of a checkout: no Python package
    # (a top-level "training" would collide in site-packages). Its configs are installed as data.
    packages=find_packages(include=["bisestdc_core*", "bisestdc_ros*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/training/configs", glob("training/configs/*.yaml")),
        (f"share/{PACKAGE}/training/configs/base", glob("training/configs/base/*.yaml")),
    ],
    python_requires=">=3.10",
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="bisestdc maintainers",
    maintainer_email="maintainers@bisestdc.invalid",
    description="BiSeSTDC small-object semantic segmentation for ROS 2",
    license="MIT",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "segment_node = bisestdc_ros.cli.segment_node:main",
            "bisestdc-make-bag = bisestdc_ros.cli.make_bag:main",
            "bisestdc-bag-eval = bisestdc_ros.cli.bag_eval:main",
            "bisestdc-export = bisestdc_core.cli.export:main",
            "bisestdc-benchmark = bisestdc_core.cli.benchmark:main",
            "bisestdc-quantize = bisestdc_core.cli.quantize:main",
            "bisestdc-train = bisestdc_core.cli.train:main",
            "bisestdc-evaluate = bisestdc_core.cli.evaluate:main",
            "bisestdc-package-checkpoint = bisestdc_core.cli.package_checkpoint:main",
        ],
        # The core's calibration sources read --calib-bag with this (the core imports no ROS).
        "bisestdc.bag_frame_readers": [
            "rosbag2 = bisestdc_ros.bags.calibration_frames:RosbagFrames",
        ],
    },
)
