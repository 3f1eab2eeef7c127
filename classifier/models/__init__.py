"""The models: backbones, the network, bundles on disk, compiled runtimes, the detector, the prediction pipeline, the engines that run it, and the heatmaps that explain it."""
