# ESPNetv2 (width s = 2.0) + its pyramid-pooling decoder, PASCAL VOC 2012 (21 classes: background + 20).
# Published checkpoint: espnetv2_s_2.0_pascal_384x384.pth (sacmehta/EdgeNets, MIT licence), trained at 384x384,
# 67.0 mIoU (val). Input: RGB in [0, 1] normalised with the ImageNet mean / std (done by SegmentationPrior).
# Encoder outputs: 32 / 128 / 256 / 512 channels at strides 2 / 4 / 8 / 16; DeepSPG feeds branches 1, 2, 3
# to its SEM scales (prior.seg_branches: [1, 2, 3], network_g.sem_channels: [128, 256, 512]).
model = dict(
    type='EncoderDecoder',
    backbone=dict(type='DeepSPGESPNetv2', s=2.0),
    decode_head=dict(type='DeepSPGESPNetv2Head', in_channels=[32, 128, 256, 512], num_classes=21, dec_channels=16),
)
dataset_type = 'PascalVOCDataset'
