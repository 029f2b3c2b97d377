"""What the delivery paths share: config rendering (``deploy.nginx``) and the
native launcher (``deploy.native``). Compose and Ansible render the same
templates from ``nginx/``."""
