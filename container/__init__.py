"""The bento's container image: built with ``bentoml containerize``, offline where need be.

``make image`` (``python -m container``) builds the bento and its image; where no registry gives
the base image, it builds an equivalent with debootstrap. ``engine`` finds or starts a Docker
engine with no bridge and no firewall changes. Nothing here is imported by the service.
"""
