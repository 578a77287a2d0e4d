"""VGG19, built from array ops whose gradients are derived by hand (the teaching core).

    architecture.py    the layer table: names, channels, where the pools fall
    layers.py          reference conv, ReLU and pooling, forward and backward
    gradcheck.py       finite-difference checks of any backward
    preprocessing.py   pixels to network input and back; image checks
    vgg.py             VGG19.forward and VGG19.backward over a choice of convolution
    fast/              the fast convolutions the stylization path runs

Imports nothing from the rest of scratchnst but ``backend`` and ``errors``.
"""
