"""Videos → face crops: the one face path of the converter (`data_prep`) and `predict`.

- `stream`: lazily decoded frame streams (OpenCV), with their compressed JPEG frames when
  they have them.
- `jpeg`: compressed frames decoded at the reduced scale the face crops need.
- `clock`: frame times (rate, timestamp files, container stamps) and time-axis helpers.
- `face`: face detection, box tracking and square crops.
- `face_video`: a recording's RGB face crops with NIR crops paired by time.
"""
