"""A small hand-written corpus with one clear answer per query, for real-model search tests."""

DOCS = [
    {
        "id": "pasta",
        "title": "Cooking pasta",
        "text": "Boil salted water, add the spaghetti and cook for ten minutes until al dente.",
        "lang": "en",
        "year": 2019,
    },
    {
        "id": "bread",
        "title": "Baking bread",
        "text": "Knead flour, water, yeast and salt, let the dough rise, then bake it in a hot oven.",
        "lang": "en",
        "year": 2020,
    },
    {
        "id": "python-venv",
        "title": "Python virtual environments",
        "text": "Create an isolated interpreter with python -m venv and activate it before installing packages.",
        "lang": "en",
        "year": 2021,
    },
    {
        "id": "git-branch",
        "title": "Git branches",
        "text": "Use git switch -c to create a new branch and git merge to combine work.",
        "lang": "en",
        "year": 2021,
    },
    {
        "id": "marathon",
        "title": "Marathon training",
        "text": "Build weekly mileage slowly, include a long run and rest days to avoid injury.",
        "lang": "en",
        "year": 2022,
    },
    {
        "id": "photosynthesis",
        "title": "Photosynthesis",
        "text": "Plants convert sunlight, water and carbon dioxide into glucose and oxygen in chloroplasts.",
        "lang": "en",
        "year": 2018,
    },
    {
        "id": "volcano",
        "title": "Volcanoes",
        "text": "Magma rises through the crust and erupts as lava, ash and gas.",
        "lang": "en",
        "year": 2017,
    },
    {
        "id": "mortgage",
        "title": "Mortgages",
        "text": "A home loan is repaid in monthly installments of principal and interest over many years.",
        "lang": "en",
        "year": 2023,
    },
    {
        "id": "sleep",
        "title": "Sleep hygiene",
        "text": "Keep a regular bedtime, avoid screens late at night and keep the bedroom dark and cool.",
        "lang": "en",
        "year": 2022,
    },
    {
        "id": "tea-fr",
        "title": "Le thé",
        "text": "Faire infuser les feuilles de thé dans de l'eau chaude pendant trois minutes.",
        "lang": "fr",
        "year": 2020,
    },
    {
        "id": "cat-care",
        "title": "Caring for a cat",
        "text": "Feed your cat twice a day, clean the litter box and take it to the vet yearly.",
        "lang": "en",
        "year": 2019,
    },
    {
        "id": "solar",
        "title": "Solar panels",
        "text": "Photovoltaic cells turn sunlight into electricity for homes and businesses.",
        "lang": "en",
        "year": 2023,
    },
]
EXPECTED = {
    "how long should spaghetti boil": "pasta",
    "isolate python packages for a project": "python-venv",
    "getting enough rest at night": "sleep",
    "how do plants make food from light": "photosynthesis",
}
