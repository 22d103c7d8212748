# ESPNetv2 (width s = 2.0) + its pyramid-pooling decoder, Cityscapes (20 outputs: the 19 classes + ignore).
# Published checkpoint: espnetv2_s_2.0_city_1024x512.pth (sacmehta/EdgeNets, MIT licence), trained at 1024x512,
# 66.4 mIoU (val). Input: RGB in [0, 1] normalised with the ImageNet mean / std (done by SegmentationPrior).
# Encoder outputs: 32 / 128 / 256 / 512 channels at strides 2 / 4 / 8 / 16; DeepSPG feeds branches 1, 2, 3.
model = dict(
    type='EncoderDecoder',
    backbone=dict(type='DeepSPGESPNetv2', s=2.0),
    decode_head=dict(type='DeepSPGESPNetv2Head', in_channels=[32, 128, 256, 512], num_classes=20, dec_channels=16),
)
dataset_type = 'CityscapesDataset'
