"""``python -m ust.weights``: rewrite manifest.json for the teachers in this folder."""

from . import write_manifest

if __name__ == "__main__":
    for key, entry in write_manifest().items():
        print(f"{key}: {entry['file']} {entry['bytes'] / 1e6:.1f} MB sha256 {entry['file_sha256'][:12]}...")
