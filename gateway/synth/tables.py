"""Invented but realistic reference tables for synthetic records: names by origin, spelling
variants, streets, towns and postcode districts per force area, phone blocks and free-text
templates.

Everything here is written for this project; no list is copied from a real register. The tables
are small on purpose: realism comes from combining them, and small tuples keep `random.choice`
fast enough for a million records.
"""

from __future__ import annotations

from dataclasses import dataclass


def _split(names: str) -> tuple[str, ...]:
    """A table written as one comma-separated string, so it stays compact under the formatter."""
    return tuple(name.strip() for name in names.split(","))


@dataclass(frozen=True, slots=True)
class NameOrigin:
    """Names common in one community in the UK, with the nationalities its members often hold.

    `family_first` marks conventions (Vietnamese) where the family name is written first, which
    is where English-speaking data entry most often swaps the fields.
    """

    key: str
    weight: int
    male: tuple[str, ...]
    female: tuple[str, ...]
    family: tuple[str, ...]
    nationalities: tuple[str, ...]
    family_first: bool = False


ORIGINS: tuple[NameOrigin, ...] = (
    NameOrigin(
        "english",
        52,
        male=_split(
            "Oliver, Jack, Harry, George, Jacob, Charlie, Thomas, James, William, Joshua, Daniel,"
            " Ryan, Liam, Connor, Callum, Kyle, Jordan, Lewis, Bradley, Jamie, Nathan, Reece, "
            "Tyler, Kieran, Dylan, Mason, Ethan, Alfie, Leon, Marcus, Darren, Lee, Craig, Dean, "
            "Wayne, Gary, Paul, Mark, Stephen, Andrew, Michael, David, Christopher, Robert, "
            "Anthony"
        ),
        female=_split(
            "Olivia, Amelia, Isla, Ava, Emily, Sophie, Grace, Lily, Chloe, Ella, Jessica, Megan, "
            "Holly, Lauren, Charlotte, Hannah, Rebecca, Gemma, Danielle, Kayleigh, Jade, Shannon,"
            " Paige, Leah, Courtney, Stacey, Amy, Laura, Sarah, Emma, Claire, Nicola, Donna, "
            "Tracey, Michelle, Kelly, Lisa, Joanne, Victoria, Natalie"
        ),
        family=_split(
            "Smith, Jones, Williams, Taylor, Brown, Davies, Evans, Wilson, Thomas, Johnson, "
            "Roberts, Robinson, Thompson, Wright, Walker, White, Edwards, Hughes, Green, Hall, "
            "Lewis, Harris, Clarke, Patel, Jackson, Wood, Turner, Martin, Cooper, Hill, Ward, "
            "Morris, Moore, Clark, Lee, King, Baker, Harrison, Morgan, Allen, James, Scott, "
            "Phillips, Watson, Davis, Parker, Price, Bennett, Young, Griffiths, Mitchell, Kelly, "
            "Cook, Carter, Richardson, Bailey, Collins, Bell, Shaw, Murphy, Miller, Cox, "
            "Richards, Khan, Marshall, Anderson, Simpson, Ellis, Adams, Singh, Begum, Wilkinson, "
            "Foster, Chapman, Powell, Webb, Rogers, Gray, Mason, Ali, Hunt, Hussain, Campbell, "
            "Matthews, Owen, Palmer, Holmes, Mills, Barnes, Knight, Lloyd, Butler, Russell, "
            "Barker, Fisher, Stevens, Jenkins, Murray, Dixon, Harvey, Graham, Pearson, Ahmed, "
            "Fletcher, Walsh, Kaur, Gibson, Howard"
        ),
        nationalities=("GB",),
    ),
    NameOrigin(
        "irish",
        6,
        male=_split(
            "Seán, Ciarán, Pádraig, Declan, Eoin, Niall, Cathal, Darragh, Oisín, Conor, Cian, "
            "Ronan, Fionn, Tadhg"
        ),
        female=_split(
            "Aoife, Siobhán, Niamh, Caoimhe, Róisín, Saoirse, Orla, Sinéad, Clodagh, Gráinne, "
            "Aisling, Méabh"
        ),
        family=_split(
            "O'Brien, O'Sullivan, Murphy, Ó Briain, McCarthy, Byrne, Ryan, O'Connor, Doherty, "
            "Gallagher, Ó Súilleabháin, Kavanagh, McLaughlin, Quinn, Mac Giolla, Brennan, Ní "
            "Dhomhnaill, Fitzgerald"
        ),
        nationalities=("IE", "GB"),
    ),
    NameOrigin(
        "south_asian",
        12,
        male=_split(
            "Mohammed, Muhammad, Ahmed, Ali, Hassan, Imran, Bilal, Usman, Zain, Abdul Rahman, "
            "Hamza, Yusuf, Tariq, Arjun, Rohan, Sanjay, Harpreet, Gurpreet, Ravi, Amit, Shahid, "
            "Faisal, Adnan, Kamran"
        ),
        female=_split(
            "Fatima, Aisha, Ayesha, Zainab, Maryam, Amina, Sana, Nadia, Priya, Anjali, Simran, "
            "Rukhsana, Shazia, Saima, Nasreen, Farzana"
        ),
        family=_split(
            "Khan, Hussain, Ahmed, Ali, Shah, Iqbal, Akhtar, Rashid, Malik, Chaudhry, Mahmood, "
            "Patel, Sharma, Singh, Kaur, Gill, Sandhu, Begum, Rahman, Uddin, Miah, Islam, "
            "Chowdhury, Qureshi"
        ),
        nationalities=("GB", "PK", "BD", "IN"),
    ),
    NameOrigin(
        "polish",
        5,
        male=_split(
            "Łukasz, Paweł, Michał, Krzysztof, Piotr, Tomasz, Marcin, Wojciech, Grzegorz, Jakub, "
            "Kamil, Mateusz, Sławomir, Bartłomiej"
        ),
        female=_split(
            "Agnieszka, Małgorzata, Katarzyna, Joanna, Magdalena, Żaneta, Monika, Ewa, Justyna, "
            "Beata"
        ),
        family=_split(
            "Nowak, Kowalski, Wiśniewski, Wójcik, Kowalczyk, Kamiński, Lewandowski, Zieliński, "
            "Szymański, Woźniak, Dąbrowski, Stępień, Jabłoński, Król"
        ),
        nationalities=("PL",),
    ),
    NameOrigin(
        "romanian",
        4,
        male=_split(
            "Ștefan, Ionuț, Andrei, Alexandru, Mihai, Constantin, Florin, Costel, Marian, "
            "Gheorghe, Răzvan, Cătălin"
        ),
        female=_split("Ioana, Elena, Andreea, Mădălina, Alina, Florentina, Roxana"),
        family=_split(
            "Popescu, Ionescu, Popa, Dumitru, Stan, Stoica, Gheorghe, Mihăilă, Rădulescu, "
            "Munteanu, Lungu, Constantinescu, Țurcanu, Bălan"
        ),
        nationalities=("RO",),
    ),
    NameOrigin(
        "ukrainian_russian",
        4,
        male=_split(
            "Aleksandr, Oleksandr, Dmitri, Sergei, Mykola, Yuriy, Andriy, Vladimir, Ivan, Maksym,"
            " Artem, Bohdan"
        ),
        female=_split("Olena, Yulia, Natalia, Svitlana, Tetiana, Oksana, Anastasia"),
        family=_split(
            "Shevchenko, Kovalenko, Bondarenko, Tkachenko, Ivanov, Petrov, Sokolov, Melnyk, "
            "Kravchenko, Boyko, Volkov, Morozov"
        ),
        nationalities=("UA", "RU"),
    ),
    NameOrigin(
        "vietnamese",
        4,
        male=_split("Văn An, Văn Minh, Đức Anh, Văn Hùng, Quang Huy, Văn Tuấn, Thành Long"),
        female=("Thị Lan", "Thị Hoa", "Thị Mai", "Thu Trang", "Ngọc Anh", "Thị Hương"),
        family=_split("Nguyễn, Trần, Lê, Phạm, Hoàng, Vũ, Đặng, Bùi, Đỗ, Ngô"),
        nationalities=("VN",),
        family_first=True,
    ),
    NameOrigin(
        "albanian",
        4,
        male=_split(
            "Arben, Besnik, Gëzim, Dritan, Ermal, Erion, Fatmir, Klodian, Arjan, Sokol, Ilir, "
            "Lulzim"
        ),
        female=_split("Elira, Ardita, Blerina, Drita, Mirela, Anila, Valbona"),
        family=_split(
            "Hoxha, Çela, Shehu, Gjoka, Kërçiku, Dervishi, Lleshi, Berisha, Krasniqi, Gashi, "
            "Xhafa, Muça"
        ),
        nationalities=("AL",),
    ),
    NameOrigin(
        "nigerian",
        5,
        male=_split(
            "Chukwuemeka, Oluwaseun, Adebayo, Olumide, Chinedu, Emeka, Tunde, Ikechukwu, "
            "Babatunde, Obinna, Femi, Kayode"
        ),
        female=_split(
            "Chiamaka, Oluwatoyin, Ngozi, Funmilayo, Adaeze, Folake, Chioma, Yetunde, Blessing, "
            "Temitope"
        ),
        family=_split(
            "Okafor, Adeyemi, Okonkwo, Adebayo, Eze, Ogunleye, Nwosu, Balogun, Oladipo, Ibrahim, "
            "Okoro, Adewale, Obi, Oyelaran-Smith"
        ),
        nationalities=("NG", "GB"),
    ),
)

# Alternative romanisations of the same name, as different forces' systems record them. Each
# group is one name; any member can be written for any other.
TRANSLITERATIONS: tuple[tuple[str, ...], ...] = (
    ("Mohammed", "Muhammad", "Mohamed", "Mohammad", "Mohamad"),
    ("Yusuf", "Youssef", "Yousef", "Yusef"),
    ("Ahmed", "Ahmad", "Ahmet"),
    ("Hussain", "Hussein", "Husain"),
    ("Hassan", "Hasan"),
    ("Usman", "Osman", "Uthman"),
    ("Chaudhry", "Chaudhary", "Choudhury"),
    ("Chowdhury", "Choudhury", "Chaudhury"),
    ("Rahman", "Rehman"),
    ("Aleksandr", "Alexander", "Oleksandr", "Aleksander", "Alexandr"),
    ("Oleksandr", "Aleksandr", "Olexandr"),
    ("Dmitri", "Dmitry", "Dmytro", "Dimitri"),
    ("Sergei", "Sergey", "Serhiy", "Sergiy"),
    ("Yuriy", "Yuri", "Iurii", "Yurii"),
    ("Andriy", "Andrii", "Andrei", "Andrey"),
    ("Olena", "Elena", "Yelena", "Alena"),
    ("Yulia", "Yuliya", "Julia", "Iuliia"),
    ("Tetiana", "Tatiana", "Tatyana"),
    ("Natalia", "Nataliya", "Natalya"),
    ("Mykola", "Nikolai", "Mikola"),
    ("Maksym", "Maxim", "Maksim"),
    ("Ivanov", "Ivanoff"),
    ("Shevchenko", "Chevchenko", "Schewtschenko"),
    ("Kovalenko", "Kowalenko"),
    ("Bondarenko", "Bondarenco"),
    ("Hoxha", "Hodja", "Hoxhaj"),
    ("Oluwaseun", "Oluseun", "Seun"),
    ("Chukwuemeka", "Chukwu-Emeka", "Emeka"),
)

# Streets: invented combinations of common English street-name stems and suffixes.
STREET_STEMS: tuple[str, ...] = _split(
    "Church, Station, Victoria, Park, Queen, King, Mill, High, Albert, Grove, Manor, York, "
    "Windsor, Clarence, Oxford, Canal, Dock, Market, Chapel, Bridge, Green, Elm, Oak, Ash, Beech,"
    " Cedar, Willow, Hawthorn, Springfield, Westfield, Brook, Meadow, Gladstone, Nelson, Stanley,"
    " Derby, Lancaster, Cromwell, Salisbury, Hampton, Kingsway, Marlborough, Carlton, Balmoral, "
    "Belmont, Rosebery, Granville, Picton, Lime, Cotton"
)
STREET_SUFFIXES: tuple[str, ...] = _split(
    "Road, Street, Lane, Avenue, Close, Drive, Way, Crescent, Terrace, Place, Gardens, Court, "
    "Walk, Row, Parade"
)
ESTATE_NAMES: tuple[str, ...] = _split(
    "Riverside Trading Estate, Canal Side Industrial Park, Northgate Business Centre, Station "
    "Yard, Victoria Retail Park, Mill Lane Industrial Estate, Dockside Units, Parkway Enterprise "
    "Centre"
)
FLAT_PREFIXES: tuple[str, ...] = ("Flat", "Apartment", "Room")

# Premises names for car washes and nail bars (invented).
CAR_WASH_NAMES: tuple[str, ...] = _split(
    "Sparkle Hand Car Wash, Diamond Valet Centre, Shine Zone Hand Wash, Express Auto Spa, Crystal"
    " Hand Car Wash, Star Valeting, Premier Jet Wash, Mega Shine Car Wash"
)
NAIL_BAR_NAMES: tuple[str, ...] = _split(
    "Lotus Nails, Golden Nails & Beauty, Pretty Nails, Star Nails, Orchid Nail Bar, Luxe Nails, "
    "Diamond Nails Spa, Rose Beauty Nails"
)
OCG_NAMES: tuple[str, ...] = _split(
    "Northside Crew, Block 9, Dockers, The Firm, Eastside Boys, Hillside Gang, Zone 2, The "
    "Family, Top Boys, Southside Mandem"
)
BUSINESS_NAMES: tuple[str, ...] = _split(
    "Quick Fix Builders Ltd, Greenfield Produce Ltd, A1 Recruitment Services, Fresh Pack Foods "
    "Ltd, City Cleaning Solutions, Sunrise Takeaway, Metro Minicabs, Prime Labour Supply Ltd"
)
LINE_BRANDS: tuple[str, ...] = _split(
    "Dolla, Jay, Tiny, Benz, Snoop, Kash, Ricky, Scouse, Brum, Deano, Lemon, Bandz, Fizzy, Zeus, "
    "Tom, Marley, Chase, Bugsy, Gucci, Milly"
)

# Town names and postcode districts per force area. Forces without an entry fall back to
# `GENERIC_AREA`; districts are real outward codes, inward codes are generated.
FORCE_AREAS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "01": (
        _split("London, Croydon, Romford, Ilford, Harrow, Bromley, Kingston upon Thames"),
        _split(
            "E1, E2, E3, E5, E8, E9, E10, E13, E15, E17, N1, N4, N7, N9, N15, N17, N18, SE1, SE5,"
            " SE8, SE11, SE14, SE15, SE18, SE28, SW1V, SW2, SW8, SW9, SW11, SW16, W1D, W2, W10, "
            "W12, NW1, NW6, NW10, CR0, RM1, IG1, HA1, BR1, KT1"
        ),
    ),
    "05": (
        _split("Liverpool, Birkenhead, St Helens, Bootle, Wallasey, Kirkby, Southport"),
        _split(
            "L1, L3, L4, L5, L6, L7, L8, L9, L11, L13, L15, L17, L20, L24, L32, L36, CH41, CH42, "
            "CH43, CH44, CH45, CH46, CH49, WA10, WA9, PR8"
        ),
    ),
    "20": (
        ("Birmingham", "Wolverhampton", "Coventry", "Dudley", "Walsall", "West Bromwich"),
        _split(
            "B1, B5, B6, B7, B8, B9, B10, B11, B12, B19, B20, B21, B23, B33, B36, B44, B66, B70, "
            "B71, WV1, WV2, WV4, WV10, WV14, CV1, CV2, CV3, CV6, DY1, DY2, DY4, DY5, WS1, WS2, "
            "WS3, WS10"
        ),
    ),
    "06": (
        _split("Manchester, Salford, Oldham, Bolton, Stockport, Rochdale, Wigan"),
        _split("M1, M4, M8, M9, M11, M12, M14, M16, M40, M6, OL1, BL1, SK1, OL11, WN1"),
    ),
    "04": (
        ("Blackpool", "Preston", "Blackburn", "Burnley", "Lancaster"),
        _split("FY1, FY4, PR1, PR2, BB1, BB2, BB11, LA1"),
    ),
    "07": (
        ("Chester", "Warrington", "Crewe", "Ellesmere Port", "Macclesfield"),
        _split("CH1, CH2, CH65, WA1, WA2, CW1, CW2, SK11"),
    ),
    "60": (("Wrexham", "Rhyl", "Bangor", "Colwyn Bay"), ("LL11", "LL13", "LL18", "LL57", "LL29")),
    "22": (
        ("Worcester", "Shrewsbury", "Telford", "Hereford", "Kidderminster"),
        _split("WR1, WR5, SY1, TF1, TF3, HR1, DY10"),
    ),
    "21": (
        ("Stoke-on-Trent", "Stafford", "Burton upon Trent", "Tamworth"),
        ("ST1", "ST4", "ST6", "ST16", "DE14", "B77"),
    ),
    "23": (("Nuneaton", "Leamington Spa", "Rugby", "Warwick"), ("CV10", "CV11", "CV31", "CV21")),
    "43": (
        ("Reading", "Oxford", "Slough", "Milton Keynes", "High Wycombe"),
        _split("RG1, RG2, OX1, OX4, SL1, MK1, MK9, HP11"),
    ),
    "46": (
        ("Maidstone", "Margate", "Canterbury", "Dover", "Folkestone", "Gravesend"),
        ("ME14", "CT9", "CT1", "CT16", "CT20", "DA11"),
    ),
    "42": (
        ("Southend-on-Sea", "Chelmsford", "Colchester", "Basildon", "Harlow"),
        ("SS1", "SS2", "CM1", "CO1", "SS14", "CM20"),
    ),
    "47": (
        ("Brighton", "Hastings", "Eastbourne", "Crawley", "Worthing"),
        ("BN1", "BN2", "TN34", "BN21", "RH10", "BN11"),
    ),
    "50": (
        ("Plymouth", "Exeter", "Torquay", "Truro", "Barnstaple"),
        _split("PL1, PL4, EX1, EX4, TQ1, TR1, EX31"),
    ),
    "36": (
        ("Norwich", "Great Yarmouth", "King's Lynn", "Lowestoft"),
        ("NR1", "NR2", "NR30", "PE30", "NR32"),
    ),
    "10": (
        ("Newcastle upon Tyne", "Sunderland", "Gateshead", "South Shields"),
        ("NE1", "NE4", "SR1", "NE8", "NE33"),
    ),
    "93": (
        ("London", "Birmingham", "Manchester", "Liverpool", "Leeds"),
        ("N1", "WC1X", "B2", "M1", "L1", "LS1"),
    ),
}
GENERIC_AREA: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("Northtown", "Riverford", "Eastbridge", "Westbury", "Ashford"),
    _split("AB10, DE1, LE1, NG1, S1, LS6, HU1, TS1, YO1, DH1, CA1, CB1, IP1"),
)
# Letters Royal Mail uses in inward codes (never C, I, K, M, O, V).
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"

# Typical importing forces for lines run from each exporting force (used when a background line
# is imported into a force outside this run).
IMPORTING_NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "01": _split("46, 42, 47, 43, 41, 40, 50, 37, 36"),
    "05": _split("07, 04, 60, 22, 03, 63, 55, 50"),
    "20": _split("22, 21, 23, 33, 60, 63, 53, 52"),
    "06": _split("04, 07, 03, 12, 14, 60, 32"),
}
DEFAULT_NEIGHBOURS: tuple[str, ...] = _split("22, 21, 33, 36, 46, 50, 60, 63")

# UK mobile blocks (07XXX, written without the 0) that libphonenumber 9.x holds valid for GB as
# mobiles for every subscriber number; checked by tests/synth. Pager (076) and Isle of Man, Jersey
# and Guernsey blocks are left out, as are the blocks whose validity depends on later digits.
_INVALID_MOBILE_BLOCKS = frozenset({7457, 7509, 7524, 7781, 7797, 7829, 7839, 7911, 7937, 7700})
MOBILE_BLOCKS: tuple[str, ...] = tuple(
    str(block)
    for block in (*range(7300, 7600), *range(7701, 8000))
    if block not in _INVALID_MOBILE_BLOCKS
)

# Handset type allocation codes (first 8 IMEI digits): invented values in the "35" reporting body
# range; only the Luhn check digit makes an IMEI valid, so any 14 digits work.
IMEI_TACS: tuple[str, ...] = _split(
    "35209900, 35328504, 35401611, 35674108, 35875207, 35391805, 35925406, 35016849"
)
HANDSETS: tuple[str, ...] = _split(
    "basic feature phone, Nokia 105, Alcatel 1066, iPhone 11, iPhone 13, Samsung Galaxy A14, "
    "Samsung Galaxy S21, Motorola G32, unknown smartphone"
)
NETWORKS: tuple[str, ...] = _split("EE, O2, Vodafone, Three, Lebara, Lycamobile, giffgaff")

# Vehicle memory tags: first letter is the DVLA region. Forces favour their local region.
FORCE_VRM_REGIONS: dict[str, str] = {
    "01": "L",
    "05": "M",
    "06": "M",
    "20": "B",
    "21": "B",
    "22": "B",
    "23": "B",
    "04": "P",
    "07": "D",
    "60": "C",
    "10": "N",
    "46": "G",
    "42": "E",
    "43": "R",
    "47": "G",
    "50": "W",
    "36": "A",
}
VRM_REGION_LETTERS = "ABCDEFGHKLMNOPRSVWY"
VRM_LETTERS = "ABCDEFGHJKLMNOPRSTUVWXY"  # never I, Q or Z in the random part
VEHICLES: tuple[tuple[str, str], ...] = (
    ("Ford", "Fiesta"),
    ("Ford", "Focus"),
    ("Vauxhall", "Corsa"),
    ("Vauxhall", "Astra"),
    ("Volkswagen", "Golf"),
    ("Volkswagen", "Polo"),
    ("BMW", "3 Series"),
    ("BMW", "1 Series"),
    ("Mercedes-Benz", "A-Class"),
    ("Mercedes-Benz", "C-Class"),
    ("Audi", "A3"),
    ("Audi", "A4"),
    ("Toyota", "Yaris"),
    ("Toyota", "Prius"),
    ("Nissan", "Qashqai"),
    ("Peugeot", "208"),
    ("Renault", "Clio"),
    ("Kia", "Sportage"),
    ("Hyundai", "i10"),
    ("Ford", "Transit"),
    ("Mercedes-Benz", "Sprinter"),
    ("Volkswagen", "Transporter"),
    ("Land Rover", "Range Rover"),
    ("Skoda", "Octavia"),
    ("SEAT", "Leon"),
    ("Honda", "Civic"),
    ("Fiat", "500"),
)
COLOURS: tuple[str, ...] = _split(
    "black, white, silver, grey, blue, red, green, yellow, orange, bronze"
)

SOURCE_SYSTEMS: tuple[str, ...] = ("niche-rms", "connect", "athena", "storm", "pnd-extract")
UNITS: tuple[str, ...] = _split(
    "Intelligence Hub, Serious Organised Crime Unit, Modern Slavery Team, County Lines Taskforce,"
    " Neighbourhood Policing, Public Protection Unit, Force Intelligence Bureau, Safeguarding Hub"
)

# Free-text templates. Placeholders are filled from the tables; deal-line numbers are written in
# the national format ("07912 345678"), as officers type them.
INTEL_TEXTS: tuple[str, ...] = (
    "Subject seen handing small packages to youths outside {place} on {street} late evening.",
    "Source reports subject is using a {colour} {make} to collect cash from addresses in {town}.",
    "Workers at {place} appear to live on site and are collected by minibus each morning.",
    "Subject believed to be holding a quantity of class A drugs at an address on {street}.",
    "Neighbours report frequent short visits to a flat on {street}, {town}, at all hours.",
    "Subject is said to owe a drugs debt and is being made to store items for others.",
    "A vulnerable adult at an address on {street} may have had the property taken over.",
    "Subject is reported to recruit young people from schools in {town} via social media.",
    "Staff at {place} are said to hand their wages to a man who drives a {colour} {make}.",
    "Source states subject travels to {town} by train twice a week carrying cash.",
)
DEAL_LINE_TEXTS: tuple[str, ...] = (
    "Test purchase made from deal line {number}, marketed as the '{brand}' line; runner arrived "
    "on foot within twenty minutes in {town}.",
    "Bulk marketing texts received from {number} advertising the '{brand}' line in {town}.",
    "Handset seized from a juvenile in {town} held repeated contact with {number}, believed to "
    "be the '{brand}' deal line.",
    "Source states the '{brand}' line now runs on {number} and supplies heroin and crack in "
    "{town}.",
)
EVENT_TEXTS: tuple[str, ...] = (
    "Officers attended an address on {street} following reports of a disturbance.",
    "Two adults referred to the local authority after a welfare visit to {place}.",
    "Subject arrested on {street} in possession of wraps of suspected class A drugs.",
    "Child found at a railway station in {town} with cash and two handsets; safeguarding raised.",
    "Premises visit to {place} with partner agencies; three workers spoken to.",
)
DEAL_LINE_EVENT_TEXTS: tuple[str, ...] = (
    "Juvenile arrested in {town} with wraps and a handset receiving orders on {number}.",
    "Address on {street}, {town} found cuckooed; occupant said orders came in on {number}.",
)
SLAVERY_SUSPECT_TEXTS: tuple[str, ...] = (
    "Subject is believed to control workers at several premises and to hold their passports.",
    "Subject reportedly arranges travel and accommodation for workers who are then made to "
    "repay inflated debts.",
    "Subject seen dropping workers at {place} early morning and collecting them at night.",
)
CONDITION_TEXTS: tuple[str, ...] = (
    "Not to be disseminated beyond {forces} without consulting the originator.",
    "Release to {forces} only; not for evidential use; consult the originator before action.",
    "For intelligence purposes only within {forces}; the source must not be compromised.",
)
