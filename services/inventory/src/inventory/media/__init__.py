"""Product media: images uploaded by admins, kept on storage every replica shares."""
