"""What a run leaves for people: verdict.json, attachments, Allure files, the HTML report,
notifications."""
