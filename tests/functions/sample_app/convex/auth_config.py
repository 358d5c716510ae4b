providers = [
    {"domain": "https://issuer.example.com", "applicationID": "my-app"},
]
